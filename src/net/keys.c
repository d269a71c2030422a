/* keys.c - the cluster's keys: the scheduler's CURVE keypair and join secret
 * in its state dir, the join token printed for workers, and the member
 * keypair every node derives from the secret.
 *
 * State dir (0700): cluster.key holds "public HEX" and "secret HEX" lines
 * (Curve25519, libsodium crypto_box keys = ZeroMQ CURVE keys), join.secret
 * one HEX line of 16 random bytes; both 0600, written to a temporary file
 * and renamed, so a crash never leaves half a key. Loading checks that the
 * secret key really belongs to the public one.
 *
 * Token: "px1_" + base64url without padding of (cluster public || secret),
 * 48 bytes -> 64 characters: safe in a shell without quoting. */
#include "net.h"
#include "px_base.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_PREFIX "px1_"

static int sodium_ready(void) {
    if (sodium_init() < 0) {
        px_error_set("libsodium failed to initialise");
        return -1;
    }
    return 0;
}

char *px_net_default_state_dir(void) {
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char buf[4096];
    if (x && *x) snprintf(buf, sizeof buf, "%s/parallax", x);
    else snprintf(buf, sizeof buf, "%s/.local/state/parallax", home && *home ? home : ".");
    return px_strdup(buf);
}

void px_net_keypair(uint8_t pub[PX_NET_KEY_BYTES], uint8_t sec[PX_NET_KEY_BYTES]) {
    if (sodium_ready()) abort();
    crypto_box_keypair(pub, sec);
}

void px_net_keys_derive_member(px_net_keys *k) {
    static const char label[] = "parallax member key v1";
    uint8_t seed[crypto_box_SEEDBYTES];
    crypto_generichash_state st;
    if (sodium_ready()) abort();
    crypto_generichash_init(&st, NULL, 0, sizeof seed);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label - 1);
    crypto_generichash_update(&st, k->join_secret, sizeof k->join_secret);
    crypto_generichash_final(&st, seed, sizeof seed);
    crypto_box_seed_keypair(k->member_public, k->member_secret, seed);
    sodium_memzero(seed, sizeof seed);
}

void px_net_key_fingerprint(const uint8_t pub[PX_NET_KEY_BYTES], char out[9]) {
    sodium_bin2hex(out, 9, pub, 4);
}

/* Creates dir (and parents) with mode 0700. */
static int make_dirs(const char *dir) {
    char *p = px_strdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) && errno != EEXIST) {
            px_error_set("state dir: cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0700);
    if (rc && errno != EEXIST) {
        px_error_set("state dir: cannot create %s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    free(p);
    return 0;
}

static int write_private(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return px_error_set("cannot write %s: %s", tmp, strerror(errno)), -1;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path)) {
        px_error_set("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Finds "NAME HEX" in text and decodes exactly n bytes. */
static int read_hex_field(const char *text, const char *name, uint8_t *out, size_t n, const char *path) {
    size_t nl = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, name, nl) || (line[nl] != ' ' && line[nl] != '=')) continue;
        const char *h = line + nl;
        while (*h == ' ' || *h == '=') h++;
        size_t got = 0;
        const char *end = NULL;
        if (sodium_hex2bin(out, n, h, strcspn(h, "\r\n"), NULL, &got, &end) || got != n)
            return px_error_set("%s: '%s' is not %zu hex bytes", path, name, n), -1;
        return 0;
    }
    return px_error_set("%s: no '%s' line", path, name), -1;
}

static int load_or_create_keypair(const char *dir, px_net_keys *k) {
    char path[4200];
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    size_t len;
    char *text = access(path, F_OK) == 0 ? px_read_file(path, &len) : NULL;
    if (text) {
        int rc = read_hex_field(text, "public", k->cluster_public, PX_NET_KEY_BYTES, path);
        if (!rc) rc = read_hex_field(text, "secret", k->cluster_secret, PX_NET_KEY_BYTES, path);
        sodium_memzero(text, len);
        free(text);
        if (rc) return -1;
        uint8_t check[PX_NET_KEY_BYTES];
        crypto_scalarmult_base(check, k->cluster_secret);
        if (memcmp(check, k->cluster_public, sizeof check))
            return px_error_set("%s: the secret key does not belong to the public key", path), -1;
        k->has_cluster_secret = true;
        return 0;
    }
    if (access(path, F_OK) == 0) return -1; /* exists but unreadable: px_read_file said why */
    crypto_box_keypair(k->cluster_public, k->cluster_secret);
    char pub[2 * PX_NET_KEY_BYTES + 1], sec[2 * PX_NET_KEY_BYTES + 1], buf[512];
    sodium_bin2hex(pub, sizeof pub, k->cluster_public, PX_NET_KEY_BYTES);
    sodium_bin2hex(sec, sizeof sec, k->cluster_secret, PX_NET_KEY_BYTES);
    snprintf(buf, sizeof buf, "# parallax cluster keypair (ZeroMQ CURVE); keep it private\npublic %s\nsecret %s\n", pub,
             sec);
    int rc = write_private(path, buf);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(sec, sizeof sec);
    k->has_cluster_secret = rc == 0;
    return rc;
}

static int load_or_create_secret(const char *dir, px_net_keys *k) {
    char path[4200];
    snprintf(path, sizeof path, "%s/join.secret", dir);
    if (access(path, F_OK) == 0) {
        size_t len;
        char *text = px_read_file(path, &len);
        if (!text) return -1;
        char *body = px_malloc(len + 8);
        snprintf(body, len + 8, "secret %s", text);
        int rc = read_hex_field(body, "secret", k->join_secret, PX_NET_SECRET_BYTES, path);
        sodium_memzero(text, len);
        free(text);
        free(body);
        return rc;
    }
    randombytes_buf(k->join_secret, sizeof k->join_secret);
    char hex[2 * PX_NET_SECRET_BYTES + 2];
    sodium_bin2hex(hex, sizeof hex - 1, k->join_secret, PX_NET_SECRET_BYTES);
    strcat(hex, "\n");
    return write_private(path, hex);
}

int px_net_state_load(const char *dir, px_net_keys *out) {
    memset(out, 0, sizeof *out);
    if (sodium_ready() || make_dirs(dir)) return -1;
    if (load_or_create_keypair(dir, out) || load_or_create_secret(dir, out)) return -1;
    px_net_keys_derive_member(out);
    return 0;
}

char *px_net_token_format(const px_net_keys *k) {
    uint8_t raw[PX_NET_KEY_BYTES + PX_NET_SECRET_BYTES];
    memcpy(raw, k->cluster_public, PX_NET_KEY_BYTES);
    memcpy(raw + PX_NET_KEY_BYTES, k->join_secret, PX_NET_SECRET_BYTES);
    size_t n = sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = px_malloc(n + sizeof TOKEN_PREFIX);
    strcpy(out, TOKEN_PREFIX);
    sodium_bin2base64(out + strlen(TOKEN_PREFIX), n, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

int px_net_token_parse(const char *token, px_net_keys *out) {
    memset(out, 0, sizeof *out);
    if (sodium_ready()) return -1;
    if (!token || strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)))
        return px_error_set("join token: expected 'px1_...' as printed by parallax run"), -1;
    uint8_t raw[PX_NET_KEY_BYTES + PX_NET_SECRET_BYTES];
    size_t got = 0;
    const char *b64 = token + strlen(TOKEN_PREFIX), *end = NULL;
    if (sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &got, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        got != sizeof raw || *end)
        return px_error_set("join token: malformed (copy it whole from parallax run's output)"), -1;
    memcpy(out->cluster_public, raw, PX_NET_KEY_BYTES);
    memcpy(out->join_secret, raw + PX_NET_KEY_BYTES, PX_NET_SECRET_BYTES);
    px_net_keys_derive_member(out);
    return 0;
}
