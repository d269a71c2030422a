/* hub_fetch_main.c - test driver for px_hub (tests/server_hub.mjs runs it
 * against a fake hub on loopback): resolves one model argument the way
 * `parallax serve -m` does and prints the local directory, or the error.
 *
 *   test_hub_fetch MODEL [--revision REV] [--offline] [--quiet]
 * Exit: 0 resolved (directory on stdout), 1 error (one line on stderr). */
#include "hub.h"
#include "px_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_hub_fetch MODEL [--revision REV] [--offline] [--quiet]\n");
        return 2;
    }
    px_hub_options o = {.progress = true};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--revision") && i + 1 < argc) o.revision = argv[++i];
        else if (!strcmp(argv[i], "--offline")) o.offline = true;
        else if (!strcmp(argv[i], "--quiet")) o.progress = false;
        else return fprintf(stderr, "test_hub_fetch: unknown argument %s\n", argv[i]), 2;
    }
    char *dir = px_hub_model_dir(argv[1], &o);
    if (!dir) {
        fprintf(stderr, "error: %s\n", px_error_get());
        return 1;
    }
    printf("%s\n", dir);
    free(dir);
    return 0;
}
