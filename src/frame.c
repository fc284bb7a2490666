/* frame: refcounted frames and the herald.v1 server message encoders. */
#include "herald/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/utf8.h"
#include "herald/encoding.h"

frame *frame_new(size_t len)
{
    frame *f = malloc(sizeof *f + FRAME_PRE + len + 1);
    if (!f)
        return NULL;
    atomic_init(&f->refs, 1);
    f->is_event = false;
    f->len = len;
    f->subject = NULL;
    f->subject_len = 0;
    f->raw = NULL;
    f->raw_len = 0;
    f->seq = -1;
    f->data[FRAME_PRE + len] = '\0';
    return f;
}

frame *frame_ref(frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void frame_release(frame *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

bool frame_json_string(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    if (p + 2 > cap)
        return false;
    buf[p++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            if (p + 2 >= cap)
                return false;
            buf[p++] = esc[0];
            buf[p++] = esc[1];
        } else if (c < 0x20) {
            if (p + 6 >= cap)
                return false;
            memcpy(buf + p, "\\u00", 4);
            buf[p + 4] = hex[c >> 4];
            buf[p + 5] = hex[c & 15];
            p += 6;
        } else {
            if (p + 1 >= cap)
                return false;
            buf[p++] = (char)c;
        }
    }
    if (p + 1 > cap)
        return false;
    buf[p++] = '"';
    *pos = p;
    return true;
}

static size_t skip_ws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static bool hex4(const unsigned char *s, size_t n, size_t i, unsigned *u)
{
    if (i > n || n - i < 4)
        return false;
    *u = 0;
    for (size_t k = i; k < i + 4; k++) {
        unsigned char c = s[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16)
            return false;
        *u = *u << 4 | d;
    }
    return true;
}

/* A JSON string at s[*pi] == '"'; advances past its closing quote. Lone
 * surrogate escapes are refused (strict parsers such as jansson refuse them). */
static bool scan_string(const unsigned char *s, size_t n, size_t *pi)
{
    size_t i = *pi + 1;
    while (i < n) {
        unsigned char c = s[i++];
        if (c == '"') {
            *pi = i;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (i >= n)
            return false;
        c = s[i++];
        if (c != 0 && strchr("\"\\/bfnrt", c))
            continue;
        unsigned u, lo;
        if (c != 'u' || !hex4(s, n, i, &u) || (u >= 0xdc00 && u <= 0xdfff))
            return false;
        i += 4;
        if (u >= 0xd800 && u <= 0xdbff) {
            if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u' || !hex4(s, n, i + 2, &lo) ||
                lo < 0xdc00 || lo > 0xdfff)
                return false;
            i += 6;
        }
    }
    return false;
}

static size_t digits(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

static bool scan_number(const unsigned char *s, size_t n, size_t *pi)
{
    size_t i = *pi, d;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        i = digits(s, n, i);
    else
        return false;
    if (i < n && s[i] == '.') {
        if ((d = digits(s, n, i + 1)) == i + 1)
            return false;
        i = d;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if ((d = digits(s, n, i)) == i)
            return false;
        i = d;
    }
    *pi = i;
    return true;
}

/* Is s[0..n) (valid UTF-8) one RFC 8259 JSON text? Unlike a parser it has no
 * number range or nesting depth limit: valid JSON is embedded verbatim. */
static bool scan_json(const unsigned char *s, size_t n)
{
    unsigned char local[256], *stack = local; /* open '{' / '[' */
    size_t depth = 0, cap = sizeof local, i = 0;
    enum { VALUE, FIRST_VALUE, KEY, FIRST_KEY, NEXT } st = VALUE;
    bool ok = false;
    for (;;) {
        i = skip_ws(s, n, i);
        if (st == NEXT) {
            if (depth == 0) {
                ok = i == n;
                break;
            }
            unsigned char top = stack[depth - 1];
            if (i < n && s[i] == ',') {
                i++;
                st = top == '{' ? KEY : VALUE;
            } else if (i < n && s[i] == (top == '{' ? '}' : ']')) {
                i++;
                depth--;
            } else {
                break;
            }
            continue;
        }
        if (i >= n)
            break;
        unsigned char c = s[i];
        if ((st == FIRST_KEY && c == '}') || (st == FIRST_VALUE && c == ']')) {
            i++;
            depth--;
            st = NEXT;
            continue;
        }
        if (st == KEY || st == FIRST_KEY) {
            if (c != '"' || !scan_string(s, n, &i))
                break;
            i = skip_ws(s, n, i);
            if (i >= n || s[i] != ':')
                break;
            i++;
            st = VALUE;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == cap) {
                unsigned char *bigger = malloc(cap * 2);
                if (!bigger)
                    break;
                memcpy(bigger, stack, depth);
                if (stack != local)
                    free(stack);
                stack = bigger;
                cap *= 2;
            }
            stack[depth++] = c;
            i++;
            st = c == '{' ? FIRST_KEY : FIRST_VALUE;
            continue;
        }
        if (c == '"') {
            if (!scan_string(s, n, &i))
                break;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!scan_number(s, n, &i))
                break;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            i += 4;
        } else {
            break;
        }
        st = NEXT;
    }
    if (stack != local)
        free(stack);
    return ok;
}

static bool put(char *buf, size_t cap, size_t *pos, const void *s, size_t len)
{
    if (*pos + len > cap)
        return false;
    memcpy(buf + *pos, s, len);
    *pos += len;
    return true;
}

#define PUTS(lit) put(out, cap, &pos, lit, sizeof(lit) - 1)

frame *frame_event(const char *subject, size_t slen, const void *payload, size_t plen,
                   const char *time, int64_t seq)
{
    enum { AS_JSON, AS_STRING, AS_B64 } mode = AS_B64;
    if (plen == 0)
        mode = AS_STRING;
    else if (utf8_valid(payload, plen))
        mode = scan_json(payload, plen) ? AS_JSON : AS_STRING;
    /* Worst cases: a string escapes to 6 bytes per byte; base64 is 4/3. */
    size_t body = mode == AS_JSON     ? plen
                  : mode == AS_STRING ? plen * 6 + 2
                                      : (plen + 2) / 3 * 4 + 2;
    size_t cap = 96 + slen * 6 + body + strlen(time) + 24 + slen + 2;
    frame *f = frame_new(cap);
    if (!f)
        return NULL;
    f->is_event = true;
    char *out = (char *)frame_payload(f);
    size_t pos = 0;
    bool ok = PUTS("{\"type\":\"event\",\"subject\":") &&
              frame_json_string(out, cap, &pos, subject, slen);
    size_t raw_at = 0; /* AS_JSON: where the payload sits in the frame's payload */
    if (mode == AS_B64) {
        ok = ok && PUTS(",\"data_b64\":\"");
        if (ok) {
            pos += enc_base64_encode(payload, plen, out + pos);
            ok = PUTS("\"");
        }
    } else {
        ok = ok && PUTS(",\"data\":");
        raw_at = pos;
        if (mode == AS_JSON)
            ok = ok && put(out, cap, &pos, payload, plen);
        else
            ok = ok && frame_json_string(out, cap, &pos, payload, plen);
    }
    if (ok && seq >= 0) {
        char num[40];
        int n = snprintf(num, sizeof num, ",\"seq\":%lld", (long long)seq);
        ok = put(out, cap, &pos, num, (size_t)n);
    }
    ok = ok && PUTS(",\"time\":\"") && put(out, cap, &pos, time, strlen(time)) && PUTS("\"}");
    if (!ok) {
        frame_release(f);
        return NULL;
    }
    /* Shrink to the exact size (a text payload was sized for the worst
     * escaping) and keep the raw subject behind the payload, and the raw
     * payload too unless the JSON holds it verbatim. Not shared yet, so
     * moving it is safe. */
    size_t extra = mode == AS_JSON ? 0 : plen;
    frame *g = realloc(f, sizeof *f + FRAME_PRE + pos + 1 + slen + 1 + extra);
    if (!g) {
        frame_release(f);
        return NULL;
    }
    g->len = pos;
    char *p = (char *)frame_payload(g);
    p[pos] = '\0';
    memcpy(p + pos + 1, subject, slen);
    p[pos + 1 + slen] = '\0';
    g->subject = p + pos + 1;
    g->subject_len = slen;
    if (extra)
        memcpy(p + pos + 1 + slen + 1, payload, plen);
    g->raw = (const unsigned char *)(mode == AS_JSON ? p + raw_at : p + pos + 1 + slen + 1);
    g->raw_len = plen;
    g->seq = seq < 0 ? -1 : seq;
    return g;
}

bool frame_event_is(const frame *f, const char *subject, size_t slen, const void *payload,
                    size_t plen, int64_t seq)
{
    return f->is_event && f->raw && f->seq == (seq < 0 ? -1 : seq) && f->subject_len == slen &&
           f->raw_len == plen && memcmp(f->subject, subject, slen) == 0 &&
           (plen == 0 || memcmp(f->raw, payload, plen) == 0);
}

frame *frame_from_json(const json_t *o)
{
    size_t n = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (n == 0)
        return NULL;
    frame *f = frame_new(n);
    if (!f)
        return NULL;
    json_dumpb(o, (char *)frame_payload(f), n, JSON_COMPACT | JSON_PRESERVE_ORDER);
    frame_payload(f)[n] = '\0';
    return f;
}

static frame *typed(const char *type, const char *id)
{
    json_t *o = json_pack("{s:s}", "type", type);
    if (!o)
        return NULL;
    if (id)
        json_object_set_new(o, "id", json_string(id));
    frame *f = frame_from_json(o);
    json_decref(o);
    return f;
}

frame *frame_ok(const char *id)
{
    return typed("ok", id);
}

frame *frame_pong(const char *id)
{
    return typed("pong", id);
}

frame *frame_error(const char *id, const char *code, const char *message, const char *subject,
                   int64_t first_seq)
{
    json_t *o = json_pack("{s:s}", "type", "error");
    if (!o)
        return NULL;
    if (id)
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "code", json_string(code));
    json_object_set_new(o, "message", json_string(message));
    if (subject)
        json_object_set_new(o, "subject", json_string(subject));
    if (first_seq >= 0)
        json_object_set_new(o, "first_seq", json_integer(first_seq));
    frame *f = frame_from_json(o);
    json_decref(o);
    return f;
}

frame *frame_dropped(uint64_t count)
{
    json_t *o = json_pack("{s:s, s:I}", "type", "dropped", "count", (json_int_t)count);
    frame *f = o ? frame_from_json(o) : NULL;
    json_decref(o);
    return f;
}

frame *frame_synced(const char *id, const char *subject, uint64_t seq)
{
    json_t *o = json_pack("{s:s}", "type", "synced");
    if (!o)
        return NULL;
    if (id)
        json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "subject", json_string(subject));
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    frame *f = frame_from_json(o);
    json_decref(o);
    return f;
}
