/* Fuzz target: CloudEvent structured mode (cloudevent.h). The whole input
 * is the request body. Checked against jansson's reading of the same body:
 * a JSON `data` must come out as JSON equal to it, id/source/type as given. */
#include "fuzz.h"

#include <strings.h>

#include <jansson.h>

#include "herald/cloudevent.h"

static const char *header(const ce_binary *b, const char *name)
{
    for (size_t i = 0; i < b->nheaders; i++)
        if (strcmp(b->headers[i].name, name) == 0)
            return b->headers[i].value;
    return NULL;
}

static bool is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_memdup((const char *)data, size);
    ce_binary b;
    char err[256];
    hr_status st = ce_from_structured(body, size, &b, err, sizeof err);
    if (st == HR_OK) {
        json_t *root = json_loadb(body, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        FZ_CHECK(json_is_object(root));
        FZ_CHECK(b.id && b.id[0] && b.content_type && (b.data != NULL) == (b.len > 0));
        FZ_CHECK(strcmp(b.id, json_string_value(json_object_get(root, "id"))) == 0);
        const char *src = header(&b, "ce-source"), *type = header(&b, "ce-type");
        FZ_CHECK(src && strcmp(src, json_string_value(json_object_get(root, "source"))) == 0);
        FZ_CHECK(type && strcmp(type, json_string_value(json_object_get(root, "type"))) == 0);
        for (size_t i = 0; i < b.nheaders; i++) {
            FZ_CHECK(strncmp(b.headers[i].name, "ce-", 3) == 0);
            for (const char *c = b.headers[i].value; *c; c++)
                FZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
        }
        json_t *d = json_object_get(root, "data");
        if (d && !json_is_null(d) && is_json_type(b.content_type)) {
            json_t *payload =
                json_loadb((const char *)b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            FZ_CHECK(payload != NULL && json_equal(payload, d));
            json_decref(payload);
        }
        if (d && json_is_string(d) && !is_json_type(b.content_type))
            FZ_CHECK(b.len == json_string_length(d) &&
                     (b.len == 0 || memcmp(b.data, json_string_value(d), b.len) == 0));
        json_decref(root);
        ce_binary_clear(&b);
    } else {
        FZ_CHECK(st == HR_ERR_INVALID || st == HR_ERR_NOMEM);
        FZ_CHECK(b.headers == NULL && b.data == NULL && b.id == NULL && b.content_type == NULL);
    }
    free(body);
    return 0;
}
