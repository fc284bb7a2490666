/* jsontext: JSON pointers and JSON scalars as text over jansson. Pure. */
#include "herald/jsontext.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>

const json_t *jt_pointer_get(const json_t *doc, const char *ptr)
{
    if (!doc || !ptr)
        return NULL;
    if (*ptr == '\0')
        return doc;
    if (*ptr != '/')
        return NULL;
    const json_t *cur = doc;
    const char *p = ptr;
    char tok[1024];
    while (cur && *p == '/') {
        p++;
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~') {
                if (p[1] == '0')
                    ch = '~';
                else if (p[1] == '1')
                    ch = '/';
                else
                    return NULL; /* invalid escape */
                p++;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, n);
        } else if (json_is_array(cur)) {
            if (n == 0 || (n > 1 && tok[0] == '0') || n > 18)
                return NULL;
            size_t idx = 0;
            for (size_t i = 0; i < n; i++) {
                if (!isdigit((unsigned char)tok[i]))
                    return NULL;
                idx = idx * 10 + (size_t)(tok[i] - '0');
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

bool jt_scalar_text(const json_t *v, char buf[JT_INT_TEXT_MAX], const char **out, size_t *outlen)
{
    if (json_is_string(v)) {
        *out = json_string_value(v);
        *outlen = json_string_length(v);
    } else if (json_is_integer(v)) {
        int n = snprintf(buf, JT_INT_TEXT_MAX, "%" PRId64, (int64_t)json_integer_value(v));
        if (n < 0 || n >= JT_INT_TEXT_MAX)
            return false;
        *out = buf;
        *outlen = (size_t)n;
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? "true" : "false";
        *outlen = json_is_true(v) ? 4 : 5;
    } else {
        return false; /* null, real, object, array (or NULL) */
    }
    return true;
}
