/* cli.h - the `parallax` command line: one function per subcommand, and the
 * small flag helpers they share. A subcommand returns the process exit code
 * (0 ok, 1 runtime failure, 2 bad usage) and prints one clear error line
 * ("parallax: --flag: why") on failure. */
#ifndef PX_CLI_H
#define PX_CLI_H
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} px_command;

int px_cmd_generate(int argc, char **argv);
int px_cmd_tokenize(int argc, char **argv);
int px_cmd_template(int argc, char **argv);
int px_cmd_serve(int argc, char **argv);
int px_cmd_run(int argc, char **argv);
int px_cmd_join(int argc, char **argv);
int px_cmd_bench(int argc, char **argv);
int px_cmd_bench_model(int argc, char **argv);

/* Flag helpers: each prints "parallax: FLAG: ..." and returns false on bad input. */
bool px_flag_int(const char *flag, const char *value, long min, long max, long *out);
bool px_flag_float(const char *flag, const char *value, double min, double max, double *out);
/* A memory size, "4G", "512M", "300KiB", "1073741824" (bytes, binary units):
 * *bytes; or a fraction "0.3" (with a dot, <= 1): *fraction. The other is 0. */
bool px_flag_memory(const char *flag, const char *value, int64_t *bytes, double *fraction);
/* Parses "1,2,3" into a new array (free it); false on a malformed list. */
bool px_flag_int_list(const char *flag, const char *value, int32_t **out, int *count);
/* Returns argv[*i + 1] and advances *i, or prints "FLAG needs a value" and returns NULL. */
const char *px_flag_value(int argc, char **argv, int *i);
int px_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
