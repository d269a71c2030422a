/* safetensors.c - the tensor index of a Hugging Face model directory.
 *
 * A .safetensors file is: 8 bytes little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": …},
 * then the raw data (offsets are relative to the end of the header). A sharded
 * model lists name -> file in model.safetensors.index.json. We read only the
 * headers here; px_st_map() later maps the bytes of just the tensors a layer
 * slice needs (page-aligned mmap, read-only, never copied).
 */
#include "model.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (256u << 20)

typedef struct {
    char *path;
    int fd;
    uint64_t size;
} st_file;

struct px_safetensors {
    st_file *files;
    int n_files;
    px_st_tensor *tensors;
    int n_tensors, cap_tensors;
};

static int dtype_from_safetensors(const char *s, size_t *elem_size) {
    static const struct { const char *name; int dtype; size_t size; } table[] = {
        {"F32", PX_DTYPE_F32, 4}, {"F16", PX_DTYPE_F16, 2}, {"BF16", PX_DTYPE_BF16, 2},
        {"F64", -1, 8}, {"I64", -1, 8}, {"I32", -1, 4}, {"I16", -1, 2}, {"I8", -1, 1},
        {"U8", -1, 1}, {"BOOL", -1, 1}, {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(table); i++)
        if (!strcmp(s, table[i].name)) {
            *elem_size = table[i].size;
            return table[i].dtype;
        }
    *elem_size = 0;
    return -2;
}

static px_st_tensor *new_tensor(px_safetensors *st) {
    if (st->n_tensors == st->cap_tensors) {
        st->cap_tensors = st->cap_tensors ? st->cap_tensors * 2 : 256;
        st->tensors = px_realloc(st->tensors, (size_t)st->cap_tensors * sizeof *st->tensors);
    }
    px_st_tensor *t = &st->tensors[st->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

static int parse_shape(const cJSON *entry, const char *path, const char *name, px_st_tensor *t, uint64_t *numel) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > 8) {
        px_error_set("%s: tensor \"%s\": missing or invalid \"shape\"", path, name);
        return -1;
    }
    *numel = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12) {
            px_error_set("%s: tensor \"%s\": invalid dimension in \"shape\"", path, name);
            return -1;
        }
        t->shape[t->n_dims++] = (int64_t)d->valuedouble;
        *numel *= (uint64_t)d->valuedouble;
    }
    return 0;
}

static int parse_entry(px_safetensors *st, int file, const char *path, const cJSON *entry, uint64_t data_start) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry)) {
        px_error_set("%s: tensor \"%s\": header entry is not an object", path, name);
        return -1;
    }
    px_st_tensor *t = new_tensor(st);
    t->name = px_strdup(name);
    t->file = file;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    size_t elem = 0;
    t->dtype = cJSON_IsString(dt) ? dtype_from_safetensors(dt->valuestring, &elem) : -2;
    if (t->dtype == -2) {
        px_error_set("%s: tensor \"%s\": unknown dtype %s", path, name, cJSON_IsString(dt) ? dt->valuestring : "(missing)");
        return -1;
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    uint64_t numel;
    if (parse_shape(entry, path, name, t, &numel)) return -1;
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *e = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsArray(offs) || !cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 ||
        e->valuedouble < b->valuedouble) {
        px_error_set("%s: tensor \"%s\": missing or invalid \"data_offsets\"", path, name);
        return -1;
    }
    uint64_t begin = (uint64_t)b->valuedouble, end = (uint64_t)e->valuedouble;
    if (end - begin != numel * elem) {
        px_error_set("%s: tensor \"%s\": data_offsets span %llu bytes but shape × %s needs %llu", path, name,
                     (unsigned long long)(end - begin), t->dtype_name, (unsigned long long)(numel * elem));
        return -1;
    }
    if (data_start + end > st->files[file].size) {
        px_error_set("%s: tensor \"%s\": data ends at byte %llu but the file has %llu bytes (truncated?)", path, name,
                     (unsigned long long)(data_start + end), (unsigned long long)st->files[file].size);
        return -1;
    }
    t->offset = data_start + begin;
    t->nbytes = end - begin;
    return 0;
}

static int read_header(px_safetensors *st, int file) {
    st_file *f = &st->files[file];
    unsigned char len_bytes[8];
    if (f->size < 8 || pread(f->fd, len_bytes, 8, 0) != 8) {
        px_error_set("%s: too short to be a safetensors file", f->path);
        return -1;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len_bytes[i];
    if (n == 0 || n > MAX_HEADER_BYTES || n > f->size - 8) {
        px_error_set("%s: invalid safetensors header length %llu (file has %llu bytes)", f->path,
                     (unsigned long long)n, (unsigned long long)f->size);
        return -1;
    }
    char *json = px_malloc(n + 1);
    if (pread(f->fd, json, n, 8) != (ssize_t)n) {
        free(json);
        px_error_set("%s: could not read the header", f->path);
        return -1;
    }
    json[n] = 0;
    cJSON *root = cJSON_ParseWithLength(json, n);
    free(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        px_error_set("%s: malformed safetensors header (not a JSON object)", f->path);
        return -1;
    }
    int rc = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root) {
        if (!strcmp(entry->string, "__metadata__")) continue;
        if ((rc = parse_entry(st, file, f->path, entry, 8 + n))) break;
    }
    cJSON_Delete(root);
    return rc;
}

static int add_file(px_safetensors *st, const char *path) {
    for (int i = 0; i < st->n_files; i++)
        if (!strcmp(st->files[i].path, path)) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        px_error_set("%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        px_error_set("%s: not a regular file", path);
        return -1;
    }
    st->files = px_realloc(st->files, (size_t)(st->n_files + 1) * sizeof *st->files);
    st->files[st->n_files] = (st_file){px_strdup(path), fd, (uint64_t)sb.st_size};
    return read_header(st, st->n_files++);
}

/* Opens every shard named in the index's weight_map. */
static int add_index_files(px_safetensors *st, const char *dir, const char *index_path) {
    char *text = px_read_file(index_path, NULL);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        px_error_set("%s: malformed index (no \"weight_map\" object)", index_path);
        return -1;
    }
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, map) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
            px_error_set("%s: weight_map entry \"%s\" is not a file name", index_path, it->string);
            rc = -1;
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, it->valuestring);
        if ((rc = add_file(st, path))) break;
    }
    cJSON_Delete(root);
    return rc;
}

px_safetensors *px_st_open(const char *dir) {
    px_safetensors *st = px_calloc(1, sizeof *st);
    char single[4096], index[4096];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    int rc;
    if (access(single, F_OK) == 0) rc = add_file(st, single);
    else if (access(index, F_OK) == 0) rc = add_index_files(st, dir, index);
    else {
        px_error_set("%s: no model.safetensors or model.safetensors.index.json", dir);
        rc = -1;
    }
    if (rc) {
        px_st_close(st);
        return NULL;
    }
    return st;
}

void px_st_close(px_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        close(st->files[i].fd);
        free(st->files[i].path);
    }
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->files);
    free(st->tensors);
    free(st);
}

int px_st_count(const px_safetensors *st) { return st->n_tensors; }
const px_st_tensor *px_st_at(const px_safetensors *st, int i) { return &st->tensors[i]; }
const char *px_st_file_path(const px_safetensors *st, int file) { return st->files[file].path; }

const px_st_tensor *px_st_find(const px_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int px_st_map(const px_safetensors *st, const px_st_tensor *t, px_st_mapping *out) {
    static long page;
    if (!page) page = sysconf(_SC_PAGESIZE);
    uint64_t start = t->offset & ~(uint64_t)(page - 1);
    size_t length = (size_t)(t->offset + t->nbytes - start);
    memset(out, 0, sizeof *out);
    if (t->nbytes == 0) {
        out->data = "";
        return 0;
    }
    void *base = mmap(NULL, length, PROT_READ, MAP_PRIVATE, st->files[t->file].fd, (off_t)start);
    if (base == MAP_FAILED) {
        px_error_set("%s: mmap of tensor \"%s\" failed: %s", st->files[t->file].path, t->name, strerror(errno));
        return -1;
    }
    out->base = base;
    out->length = length;
    out->data = (const char *)base + (t->offset - start);
    return 0;
}

void px_st_unmap(px_st_mapping *m) {
    if (m->base) munmap(m->base, m->length);
    memset(m, 0, sizeof *m);
}
