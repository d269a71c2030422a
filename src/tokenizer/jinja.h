/* jinja.h - the chat-template interpreter's interface inside the tokenizer
 * module (chat.c and the tests use it; other modules use tokenizer.h).
 *
 * px_jinja_compile parses a Jinja template once (Jinja2 semantics with
 * transformers' settings: trim_blocks, lstrip_blocks, no trailing newline,
 * loop controls); px_jinja_render runs it with the members of a JSON object
 * as variables. Both return NULL and set px_error ("chat template line N:
 * ...") on failure. A compiled template is immutable and may be rendered by
 * several threads at once.
 */
#ifndef PX_JINJA_H
#define PX_JINJA_H

#include <stddef.h>

struct cJSON;
typedef struct px_jinja px_jinja;

px_jinja *px_jinja_compile(const char *src, size_t len, const char *name);
void px_jinja_free(px_jinja *t);
char *px_jinja_render(const px_jinja *t, const struct cJSON *vars, size_t *len_out);

#endif
