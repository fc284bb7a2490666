/* Fuzz target: configuration loading (config.h) from a buffer: the JSON
 * parse config_load does, then config_from_json. Environment lookups answer
 * the variable's own name (so an input chooses a secret's value by naming
 * it, "whsec_..." included), except names starting with UNSET (not set) or
 * EMPTY (""). Inputs naming device or proc files are skipped: config checks
 * that key files exist and reads PEM keys. */
#include "fuzz.h"

#include "herald/config.h"

static const char *env(const char *name)
{
    if (strncmp(name, "UNSET", 5) == 0 || strcmp(name, "HERALD_STATIC_DIR") == 0 ||
        strcmp(name, "NATS_ADDR") == 0 || strcmp(name, "HERALD_LOG_LEVEL") == 0)
        return NULL;
    if (strncmp(name, "EMPTY", 5) == 0)
        return "";
    return name;
}

static bool mentions(const uint8_t *d, size_t n, const char *s)
{
    return memmem(d, n, s, strlen(s)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Never let an input open a device, fifo or proc file. */
    if (mentions(data, size, "/dev") || mentions(data, size, "/proc") ||
        mentions(data, size, "/sys") || mentions(data, size, "\\u"))
        return 0;
    json_error_t err;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return 0;
    config_problems probs = {0};
    hr_config *cfg = config_from_json(root, env, &probs);
    FZ_CHECK((cfg == NULL) == (probs.n > 0));
    for (size_t i = 0; i < probs.n; i++)
        FZ_CHECK(probs.lines[i] && probs.lines[i][0]);
    if (cfg) {
        FZ_CHECK(cfg->perms != NULL);
        FZ_CHECK(cfg->ws_threads >= 1 && cfg->ws_threads <= 64);
        FZ_CHECK(cfg->http_listen.port >= 0 && cfg->http_listen.port <= 65535);
        FZ_CHECK(cfg->ws_listen.port >= 0 && cfg->ws_listen.port <= 65535);
        for (size_t i = 0; i < cfg->nwebhooks; i++)
            FZ_CHECK(cfg->webhooks[i].name && cfg->webhooks[i].subject);
        config_free(cfg);
    }
    config_problems_free(&probs);
    json_decref(root);
    return 0;
}
