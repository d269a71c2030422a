/* main.c - `parallax`: dispatches to a subcommand (see cli.h). */
#include "cli.h"
#include "cluster.h"
#include <stdio.h>
#include <string.h>

static const px_command commands[] = {
    {"generate", px_cmd_generate, "generate text with a model on this machine"},
    {"tokenize", px_cmd_tokenize, "encode text to token ids, or --decode ids to text"},
    {"template", px_cmd_template, "render a conversation with the model's chat template"},
    {"plan", px_cluster_cmd_plan, "phase-1 allocation (and routes) for a cluster described in JSON"},
    {"serve", px_cmd_serve, "serve a model over an OpenAI-compatible HTTP API on this machine"},
    {"run", px_cmd_run, "start a cluster scheduler: the OpenAI API over a pipeline of joined workers"},
    {"join", px_cmd_join, "join a cluster as a worker and serve the layers the scheduler assigns"},
    {"bench", px_cmd_bench, "serving benchmark: concurrent streams against an OpenAI-compatible server"},
    {"bench-model", px_cmd_bench_model, "prefill and decode speed of a model on this machine (like llama-bench)"},
};

static void print_usage(FILE *f) {
    fprintf(f, "usage: parallax COMMAND [options]   (parallax COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "parallax: unknown command '%s' (parallax --help lists them)\n", argv[1]);
    return 2;
}
