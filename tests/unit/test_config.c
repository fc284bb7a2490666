/* Unit tests for config.c: contract §1 and §6 (defaults, every key's type
 * and range, environment overrides and secrets, all problems at once,
 * config_load). The environment is a fake table set per test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/config.h"
#include "herald/log.h"
#include "herald/perms.h"

#define S(x) (x), strlen(x)

/* ---- fake environment ---------------------------------------------------- */

#define MAX_ENV 16

static struct {
    const char *name, *value;
} fake_env_tab[MAX_ENV];
static size_t fake_env_n;

static const char *fake_env(const char *name)
{
    for (size_t i = 0; i < fake_env_n; i++)
        if (strcmp(fake_env_tab[i].name, name) == 0)
            return fake_env_tab[i].value;
    return NULL;
}

static void env_set(const char *name, const char *value)
{
    assert_true(fake_env_n < MAX_ENV);
    fake_env_tab[fake_env_n].name = name;
    fake_env_tab[fake_env_n].value = value;
    fake_env_n++;
}

static int setup(void **state)
{
    fake_env_n = 0;
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fail_msg("bad test JSON: %s (line %d): %s", err.text, err.line, text);
    return j;
}

static void dump(const config_problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        print_message("problem: %s\n", p->lines[i]);
}

static bool has_line(const config_problems *p, const char *line)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->lines[i], line) == 0)
            return true;
    return false;
}

static bool has_substr(const config_problems *p, const char *sub)
{
    for (size_t i = 0; i < p->n; i++)
        if (strstr(p->lines[i], sub))
            return true;
    return false;
}

/* A valid configuration: returns it, fails the test on any problem. */
static hr_config *ok(const char *text)
{
    json_t *j = text ? parse(text) : NULL;
    config_problems p = {0};
    hr_config *c = config_from_json(j, fake_env, &p);
    json_decref(j);
    if (!c || p.n) {
        dump(&p);
        config_problems_free(&p);
        config_free(c);
        fail_msg("expected a valid configuration: %s", text ? text : "(null)");
    }
    config_problems_free(&p);
    return c;
}

static void expect_ok(const char *text)
{
    config_free(ok(text));
}

/* An invalid configuration: returns the problems (caller frees). */
static config_problems bad(const char *text)
{
    json_t *j = parse(text);
    config_problems p = {0};
    hr_config *c = config_from_json(j, fake_env, &p);
    json_decref(j);
    if (c) {
        config_free(c);
        config_problems_free(&p);
        fail_msg("expected problems: %s", text);
    }
    if (p.n == 0)
        fail_msg("NULL config but no problem reported: %s", text);
    return p;
}

/* Invalid, with exactly one problem, equal to `line`. */
static void expect_only(const char *text, const char *line)
{
    config_problems p = bad(text);
    if (p.n != 1 || strcmp(p.lines[0], line) != 0) {
        dump(&p);
        config_problems_free(&p);
        fail_msg("expected exactly \"%s\" for %s", line, text);
    }
    config_problems_free(&p);
}

/* Invalid, with (at least) the problem `line`. */
static void expect_line(const char *text, const char *line)
{
    config_problems p = bad(text);
    if (!has_line(&p, line)) {
        dump(&p);
        config_problems_free(&p);
        fail_msg("expected \"%s\" for %s", line, text);
    }
    config_problems_free(&p);
}

/* Invalid, with some problem line containing every one of the NULL-ended
 * substrings. */
static void expect_substrs(const char *text, ...)
{
    config_problems p = bad(text);
    bool found = false;
    for (size_t i = 0; i < p.n && !found; i++) {
        va_list ap;
        va_start(ap, text);
        bool all = true;
        for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
            if (!strstr(p.lines[i], s))
                all = false;
        va_end(ap);
        found = all;
    }
    if (!found) {
        dump(&p);
        config_problems_free(&p);
        fail_msg("no problem line has the expected parts for %s", text);
    }
    config_problems_free(&p);
}

static bool anon_can_subscribe(const hr_config *c, const char *pattern)
{
    const char *roles[] = {"anonymous"};
    perms_set *s = perms_set_new(c->perms, roles, 1, NULL);
    assert_non_null(s);
    bool r = perms_can_subscribe(s, S(pattern));
    perms_set_free(s);
    return r;
}

#define PEM_RSA HERALD_FIXTURES "/jwt/rsa_a_public.pem"
#define PEM_EC  HERALD_FIXTURES "/jwt/ec_p256_public.pem"

/* ---- defaults ------------------------------------------------------------ */

static void test_defaults_null_root(void **state)
{
    hr_config *c = ok(NULL);
    assert_string_equal(c->http_listen.host, "0.0.0.0");
    assert_int_equal(c->http_listen.port, 8080);
    assert_int_equal(c->http_retry_after_s, 5);
    assert_int_equal(c->http_request_timeout_s, 30);
    assert_int_equal(c->http_idle_timeout_s, 30);
    assert_int_equal(c->max_http_connections, 1000);
    assert_int_equal(c->max_http_connections_per_ip, 0);
    assert_int_equal(c->max_buffered_body_bytes, 64 * 1024 * 1024);
    assert_null(c->static_dir);
    assert_string_equal(c->ws_listen.host, "0.0.0.0");
    assert_int_equal(c->ws_listen.port, 8081);
    assert_null(c->allowed_origins);
    assert_int_equal(c->nallowed_origins, 0);
    assert_int_equal(c->ws_max_frame_bytes, 65536);
    assert_int_equal(c->ws_max_subscriptions, 100);
    assert_int_equal(c->ws_max_queue_bytes, 1048576);
    /* one per online CPU, at most 8 */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->ws_threads, cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
    assert_int_equal(c->ws_slow_consumer, SLOW_DISCONNECT);
    assert_int_equal(c->ws_auth_timeout_ms, 5000);
    assert_int_equal(c->ws_ping_interval_s, 25);
    assert_int_equal(c->ws_ping_timeout_s, 10);
    assert_null(c->ws_auth_cookie);
    assert_false(c->ws_query_token);
    assert_int_equal(c->nnats_servers, 1);
    assert_string_equal(c->nats_servers[0], "nats://127.0.0.1:4222");
    assert_string_equal(c->nats_name, "herald");
    assert_null(c->nats_user);
    assert_null(c->nats_password);
    assert_null(c->nats_token);
    assert_null(c->nats_creds_file);
    assert_int_equal(c->nats_publish_timeout_ms, 5000);
    assert_int_equal(c->njwt_keys, 0);
    assert_null(c->jwt_issuer);
    assert_null(c->jwt_audience);
    assert_string_equal(c->jwt_roles_claim, "roles");
    assert_int_equal(c->jwt_leeway_s, 5);
    assert_non_null(c->perms);
    assert_true(perms_table_has_role(c->perms, "anonymous"));
    assert_int_equal(c->nwebhooks, 0);
    assert_int_equal(c->napi_keys, 0);
    assert_int_equal(c->publish_max_body_bytes, 1048576);
    assert_int_equal(c->nhistory, 0);
    assert_false(c->ws_upgrades_per_ip.on);
    assert_false(c->http_requests_per_ip.on);
    assert_false(c->ws_messages_per_session.on);
    assert_int_equal(c->max_ws_connections, 0);
    assert_int_equal(c->max_ws_connections_per_ip, 0);
    assert_int_equal(c->log_level, HLOG_INFO);
    assert_int_equal(c->shutdown_timeout_s, 10);
    config_free(c);
}

static void test_defaults_empty_object(void **state)
{
    hr_config *c = ok("{}");
    assert_int_equal(c->http_listen.port, 8080);
    assert_int_equal(c->ws_listen.port, 8081);
    assert_string_equal(c->nats_servers[0], "nats://127.0.0.1:4222");
    assert_int_equal(c->shutdown_timeout_s, 10);
    config_free(c);
    /* Empty sections give the same defaults. */
    c = ok("{\"http\":{},\"ws\":{},\"nats\":{},\"auth\":{\"jwt\":{}},\"permissions\":{},"
           "\"webhooks\":{},\"publish_api\":{},\"history\":[],\"limits\":{},\"log\":{}}");
    assert_int_equal(c->ws_max_frame_bytes, 65536);
    assert_string_equal(c->nats_name, "herald");
    assert_true(anon_can_subscribe(c, "public.>"));
    config_free(c);
}

static void test_default_permissions(void **state)
{
    hr_config *c = ok(NULL);
    assert_true(anon_can_subscribe(c, "public.>"));
    assert_true(anon_can_subscribe(c, "public.news"));
    assert_true(anon_can_subscribe(c, "public.*.x"));
    assert_false(anon_can_subscribe(c, ">"));
    assert_false(anon_can_subscribe(c, "private.x"));
    assert_false(anon_can_subscribe(c, "public"));
    /* Only subscribe: the default anonymous role publishes nothing. */
    const char *roles[] = {"anonymous"};
    perms_set *s = perms_set_new(c->perms, roles, 1, NULL);
    assert_false(perms_can_publish(s, S("public.x")));
    perms_set_free(s);
    /* Another role name grants nothing. */
    const char *user[] = {"user"};
    s = perms_set_new(c->perms, user, 1, NULL);
    assert_false(perms_can_subscribe(s, S("public.>")));
    perms_set_free(s);
    config_free(c);
}

static void test_root_not_object(void **state)
{
    expect_only("[]", "(root): the configuration must be a JSON object");
    expect_only("42", "(root): the configuration must be a JSON object");
    expect_only("\"x\"", "(root): the configuration must be a JSON object");
}

/* ---- unknown keys -------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    expect_only("{\"htp\":{}}", "htp: unknown key");
    expect_only("{\"ws\":{\"max_frme_bytes\":1}}", "ws.max_frme_bytes: unknown key");
    expect_only("{\"http\":{\"port\":80}}", "http.port: unknown key");
    expect_only("{\"nats\":{\"server\":[]}}", "nats.server: unknown key");
    expect_only("{\"auth\":{\"jwks\":{}}}", "auth.jwks: unknown key");
    expect_only("{\"auth\":{\"jwt\":{\"isuer\":\"x\"}}}", "auth.jwt.isuer: unknown key");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret\":\"s\",\"kidd\":"
                "\"a\"}]}}}",
                "auth.jwt.keys[0].kidd: unknown key");
    expect_only("{\"permissions\":{\"rules\":{}}}", "permissions.rules: unknown key");
    expect_only("{\"permissions\":{\"roles\":{\"anonymous\":{\"subscribe\":{\"allow\":[\"a\"],"
                "\"alow\":[]}}}}}",
                "permissions.roles.anonymous.subscribe.alow: unknown key");
    expect_only("{\"publish_api\":{\"keys\":[]}}", "publish_api.keys: unknown key");
    expect_only("{\"history\":[{\"stream\":\"S\",\"subjects\":[\"a\"],\"x\":1}]}",
                "history[0].x: unknown key");
    expect_only("{\"limits\":{\"max_connections\":1}}", "limits.max_connections: unknown key");
    expect_only("{\"limits\":{\"ws_upgrades_per_ip\":{\"rate_per_s\":1,\"bursts\":2}}}",
                "limits.ws_upgrades_per_ip.bursts: unknown key");
    expect_only("{\"log\":{\"lvl\":\"info\"}}", "log.lvl: unknown key");
    env_set("GH", "s3cret");
    expect_only("{\"webhooks\":{\"gh\":{\"verify\":{\"scheme\":\"github\",\"secret_env\":\"GH\"},"
                "\"subject\":\"a.b\",\"subjet\":\"a\"}}}",
                "webhooks.gh.subjet: unknown key");
}

/* ---- wrong types --------------------------------------------------------- */

static void test_wrong_types(void **state)
{
    expect_only("{\"http\":[]}", "http: must be an object");
    expect_only("{\"ws\":1}", "ws: must be an object");
    expect_only("{\"nats\":\"x\"}", "nats: must be an object");
    expect_only("{\"auth\":{\"jwt\":true}}", "auth.jwt: must be an object");
    expect_only("{\"limits\":[]}", "limits: must be an object");
    expect_only("{\"log\":\"info\"}", "log: must be an object");
    expect_only("{\"webhooks\":[]}", "webhooks: must be an object");
    expect_only("{\"permissions\":{\"roles\":[]}}", "permissions.roles: must be an object");
    expect_only("{\"ws\":{\"query_token\":\"yes\"}}", "ws.query_token: must be true or false");
    expect_only("{\"ws\":{\"query_token\":1}}", "ws.query_token: must be true or false");
    expect_only("{\"ws\":{\"slow_consumer\":\"block\"}}",
                "ws.slow_consumer: must be one of disconnect, drop");
    expect_only("{\"ws\":{\"slow_consumer\":1}}",
                "ws.slow_consumer: must be one of disconnect, drop");
    expect_only("{\"ws\":{\"allowed_origins\":\"https://a.example\"}}",
                "ws.allowed_origins: must be an array of strings");
    expect_only("{\"ws\":{\"allowed_origins\":[\"https://a.example\", 3]}}",
                "ws.allowed_origins[1]: must be a non-empty string");
    expect_only("{\"ws\":{\"allowed_origins\":[\"a.example\"]}}",
                "ws.allowed_origins[0]: must be an origin like \"https://app.example.com\" or "
                "\"null\"");
    expect_only("{\"ws\":{\"auth_cookie\":\"\"}}", "ws.auth_cookie: must be a non-empty string");
    expect_only("{\"ws\":{\"auth_cookie\":7}}", "ws.auth_cookie: must be a non-empty string");
    expect_only("{\"nats\":{\"name\":5}}", "nats.name: must be a non-empty string");
    expect_only("{\"nats\":{\"servers\":\"nats://a:4222\"}}",
                "nats.servers: must be an array of strings");
    expect_only("{\"nats\":{\"servers\":[1]}}", "nats.servers[0]: must be a non-empty string");
    expect_only("{\"http\":{\"static_dir\":false}}", "http.static_dir: must be a non-empty string");
    expect_only("{\"http\":{\"listen\":8080}}",
                "http.listen: must be \"host:port\" (IPv6 as \"[addr]:port\", port 0-65535)");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":{}}}}",
                "auth.jwt.keys: must be an array of key objects");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[\"HS256\"]}}}",
                "auth.jwt.keys[0]: must be an object");
    expect_only("{\"history\":{}}", "history: must be an array of {stream, subjects}");
    expect_only("{\"history\":[1]}", "history[0]: must be an object");
    expect_only("{\"publish_api\":{\"api_keys\":{}}}",
                "publish_api.api_keys: must be an array of {name, sha256, roles}");
    expect_only("{\"publish_api\":{\"api_keys\":[\"k\"]}}",
                "publish_api.api_keys[0]: must be an object");
    expect_only("{\"shutdown_timeout_s\":\"10\"}",
                "shutdown_timeout_s: must be an integer between 1 and 300");
}

static void test_valid_values_stored(void **state)
{
    hr_config *c =
        ok("{\"http\":{\"listen\":\"127.0.0.1:9000\",\"static_dir\":\"/srv/s\"},"
           "\"ws\":{\"listen\":\"[::1]:9001\",\"allowed_origins\":[\"https://a.example\","
           "\"http://localhost:3000\",\"null\"],\"slow_consumer\":\"drop\","
           "\"auth_cookie\":\"hjwt\",\"query_token\":true},"
           "\"nats\":{\"name\":\"gw\",\"servers\":[\"nats://n1:4222\",\"tls://n2:4222\"]},"
           "\"auth\":{\"jwt\":{\"issuer\":\"https://id\",\"audience\":\"herald\","
           "\"roles_claim\":\"realm.roles\"}}}");
    assert_string_equal(c->http_listen.host, "127.0.0.1");
    assert_int_equal(c->http_listen.port, 9000);
    assert_string_equal(c->static_dir, "/srv/s");
    assert_string_equal(c->ws_listen.host, "::1");
    assert_int_equal(c->ws_listen.port, 9001);
    assert_int_equal(c->nallowed_origins, 3);
    assert_string_equal(c->allowed_origins[1], "http://localhost:3000");
    assert_int_equal(c->ws_slow_consumer, SLOW_DROP);
    assert_string_equal(c->ws_auth_cookie, "hjwt");
    assert_true(c->ws_query_token);
    assert_string_equal(c->nats_name, "gw");
    assert_int_equal(c->nnats_servers, 2);
    assert_string_equal(c->nats_servers[0], "nats://n1:4222");
    assert_string_equal(c->nats_servers[1], "tls://n2:4222");
    assert_string_equal(c->jwt_issuer, "https://id");
    assert_string_equal(c->jwt_audience, "herald");
    assert_string_equal(c->jwt_roles_claim, "realm.roles");
    config_free(c);
    /* auth_cookie null = off. */
    c = ok("{\"ws\":{\"auth_cookie\":null}}");
    assert_null(c->ws_auth_cookie);
    config_free(c);
}

/* Cookie auth without an Origin allow-list is cross-site WebSocket hijacking
 * waiting to happen (issue 17, defect 5). */
static void test_http_deadlines_and_connection_limits(void **state)
{
    hr_config *c = ok("{\"http\":{\"request_timeout_s\":5,\"idle_timeout_s\":7},"
                      "\"limits\":{\"max_http_connections\":50,\"max_http_connections_per_ip\":4,"
                      "\"max_buffered_body_bytes\":1048576}}");
    assert_int_equal(c->http_request_timeout_s, 5);
    assert_int_equal(c->http_idle_timeout_s, 7);
    assert_int_equal(c->max_http_connections, 50);
    assert_int_equal(c->max_http_connections_per_ip, 4);
    assert_int_equal(c->max_buffered_body_bytes, 1048576);
    config_free(c);
    expect_only("{\"http\":{\"request_timeout_s\":0}}",
                "http.request_timeout_s: must be an integer between 1 and 600");
    expect_only("{\"http\":{\"idle_timeout_s\":3601}}",
                "http.idle_timeout_s: must be an integer between 1 and 3600");
    expect_only("{\"limits\":{\"max_http_connections\":0}}",
                "limits.max_http_connections: must be an integer between 1 and 1000000");
}

static void test_auth_cookie_requires_allowed_origins(void **state)
{
    expect_only("{\"ws\":{\"auth_cookie\":\"hjwt\"}}",
                "ws.auth_cookie: requires ws.allowed_origins (cookies ride along on cross-site "
                "requests)");
    hr_config *c =
        ok("{\"ws\":{\"auth_cookie\":\"hjwt\",\"allowed_origins\":[\"https://a.example\"]}}");
    assert_string_equal(c->ws_auth_cookie, "hjwt");
    config_free(c);
}

/* ---- integer ranges ------------------------------------------------------ */

typedef struct {
    const char *tmpl; /* JSON with one %s for the value */
    const char *path;
    long long min, max;
    int64_t (*get)(const hr_config *c);
} int_key;

static int64_t g_retry(const hr_config *c)
{
    return c->http_retry_after_s;
}
static int64_t g_frame(const hr_config *c)
{
    return c->ws_max_frame_bytes;
}
static int64_t g_subs(const hr_config *c)
{
    return c->ws_max_subscriptions;
}
static int64_t g_queue(const hr_config *c)
{
    return c->ws_max_queue_bytes;
}
static int64_t g_threads(const hr_config *c)
{
    return c->ws_threads;
}
static int64_t g_authto(const hr_config *c)
{
    return c->ws_auth_timeout_ms;
}
static int64_t g_pingi(const hr_config *c)
{
    return c->ws_ping_interval_s;
}
static int64_t g_pingt(const hr_config *c)
{
    return c->ws_ping_timeout_s;
}
static int64_t g_pubto(const hr_config *c)
{
    return c->nats_publish_timeout_ms;
}
static int64_t g_leeway(const hr_config *c)
{
    return c->jwt_leeway_s;
}
static int64_t g_wh_body(const hr_config *c)
{
    return c->webhooks[0].max_body_bytes;
}
static int64_t g_wh_tol(const hr_config *c)
{
    return c->webhooks[0].tolerance_s;
}
static int64_t g_pub_body(const hr_config *c)
{
    return c->publish_max_body_bytes;
}
static int64_t g_maxconn(const hr_config *c)
{
    return c->max_ws_connections;
}
static int64_t g_maxconn_ip(const hr_config *c)
{
    return c->max_ws_connections_per_ip;
}
static int64_t g_burst(const hr_config *c)
{
    return c->ws_messages_per_session.burst;
}
static int64_t g_shutdown(const hr_config *c)
{
    return c->shutdown_timeout_s;
}

#define WH(x)                                                                                      \
    "{\"webhooks\":{\"gh\":{\"verify\":{\"scheme\":\"github\",\"secret_env\":\"GH\"},"             \
    "\"subject\":\"webhooks.gh\"" x "}}}"

static const int_key int_keys[] = {
    {"{\"http\":{\"retry_after_s\":%s}}", "http.retry_after_s", 1, 3600, g_retry},
    {"{\"ws\":{\"max_frame_bytes\":%s}}", "ws.max_frame_bytes", 1024, 16777216, g_frame},
    {"{\"ws\":{\"max_subscriptions\":%s}}", "ws.max_subscriptions", 1, 10000, g_subs},
    {"{\"ws\":{\"max_queue_bytes\":%s}}", "ws.max_queue_bytes", 4096, 1073741824, g_queue},
    {"{\"ws\":{\"threads\":%s}}", "ws.threads", 1, 64, g_threads},
    {"{\"ws\":{\"auth_timeout_ms\":%s}}", "ws.auth_timeout_ms", 100, 600000, g_authto},
    {"{\"ws\":{\"ping_interval_s\":%s}}", "ws.ping_interval_s", 1, 3600, g_pingi},
    {"{\"ws\":{\"ping_timeout_s\":%s}}", "ws.ping_timeout_s", 1, 3600, g_pingt},
    {"{\"nats\":{\"publish_timeout_ms\":%s}}", "nats.publish_timeout_ms", 100, 60000, g_pubto},
    {"{\"auth\":{\"jwt\":{\"leeway_s\":%s}}}", "auth.jwt.leeway_s", 0, 300, g_leeway},
    {WH(",\"max_body_bytes\":%s"), "webhooks.gh.max_body_bytes", 1, 67108864, g_wh_body},
    {"{\"webhooks\":{\"st\":{\"verify\":{\"scheme\":\"stripe\",\"secret_env\":\"GH\","
     "\"tolerance_s\":%s},\"subject\":\"webhooks.st\"}}}",
     "webhooks.st.verify.tolerance_s", 1, 86400, g_wh_tol},
    {"{\"publish_api\":{\"max_body_bytes\":%s}}", "publish_api.max_body_bytes", 1, 67108864,
     g_pub_body},
    {"{\"limits\":{\"max_ws_connections\":%s}}", "limits.max_ws_connections", 1, 10000000,
     g_maxconn},
    {"{\"limits\":{\"max_ws_connections_per_ip\":%s}}", "limits.max_ws_connections_per_ip", 1,
     10000000, g_maxconn_ip},
    {"{\"limits\":{\"ws_messages_per_session\":{\"rate_per_s\":1,\"burst\":%s}}}",
     "limits.ws_messages_per_session.burst", 1, 1000000, g_burst},
    {"{\"shutdown_timeout_s\":%s}", "shutdown_timeout_s", 1, 300, g_shutdown},
};

static void int_case(const int_key *k, const char *value, bool valid, long long expect)
{
    char json[1024], line[256];
    snprintf(json, sizeof json, k->tmpl, value);
    if (valid) {
        hr_config *c = ok(json);
        assert_int_equal(k->get(c), expect);
        config_free(c);
    } else {
        snprintf(line, sizeof line, "%s: must be an integer between %lld and %lld", k->path, k->min,
                 k->max);
        expect_only(json, line);
    }
}

static void test_int_ranges(void **state)
{
    env_set("GH", "s3cret");
    for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++) {
        const int_key *k = &int_keys[i];
        char v[32];
        snprintf(v, sizeof v, "%lld", k->min - 1);
        int_case(k, v, false, 0);
        snprintf(v, sizeof v, "%lld", k->min);
        int_case(k, v, true, k->min);
        snprintf(v, sizeof v, "%lld", k->max);
        int_case(k, v, true, k->max);
        snprintf(v, sizeof v, "%lld", k->max + 1);
        int_case(k, v, false, 0);
        /* Reals (even integral ones), strings, booleans and null are not integers. */
        snprintf(v, sizeof v, "%lld.0", k->min);
        int_case(k, v, false, 0);
        int_case(k, "1.5", false, 0);
        snprintf(v, sizeof v, "\"%lld\"", k->min);
        int_case(k, v, false, 0);
        int_case(k, "true", false, 0);
        int_case(k, "null", false, 0);
        int_case(k, "-9223372036854775808", false, 0);
    }
    /* The exact wording the brief and operators rely on. */
    expect_only("{\"ws\":{\"max_frame_bytes\":1023}}",
                "ws.max_frame_bytes: must be an integer between 1024 and 16777216");
    expect_only("{\"ws\":{\"max_frame_bytes\":65536.0}}",
                "ws.max_frame_bytes: must be an integer between 1024 and 16777216");
}

/* ---- listen addresses ---------------------------------------------------- */

static void test_parse_listen_good(void **state)
{
    hr_listen l;
    assert_true(config_parse_listen("127.0.0.1:0", &l));
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 0);
    assert_true(config_parse_listen("[::1]:8080", &l));
    assert_string_equal(l.host, "::1");
    assert_int_equal(l.port, 8080);
    assert_true(config_parse_listen("localhost:80", &l));
    assert_string_equal(l.host, "localhost");
    assert_int_equal(l.port, 80);
    assert_true(config_parse_listen("0.0.0.0:65535", &l));
    assert_string_equal(l.host, "0.0.0.0");
    assert_int_equal(l.port, 65535);
    assert_true(config_parse_listen("[::]:8081", &l));
    assert_string_equal(l.host, "::");
    assert_int_equal(l.port, 8081);
}

static void test_parse_listen_bad(void **state)
{
    static const char *const bad_addrs[] = {
        "8080",     "host:",   "host:99999", ":80",         "a b:80",    "[::1]8080", "",
        ":",        "[]:80",   "[::1]:",     "::1:8080",    "host:-1",   "host:80a",  "host:65536",
        "host:8 0", "[::1:80", "h:o:80",     "host:123456", "host/x:80", "host:+80",
    };
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        hr_listen l;
        if (config_parse_listen(bad_addrs[i], &l))
            fail_msg("\"%s\" accepted as a listen address", bad_addrs[i]);
    }
}

static void test_listen_in_config(void **state)
{
    static const char *const good[] = {"127.0.0.1:0", "[::1]:8080", "localhost:80"};
    for (size_t i = 0; i < 3; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"http\":{\"listen\":\"%s\"}}", good[i]);
        expect_ok(json);
        snprintf(json, sizeof json, "{\"ws\":{\"listen\":\"%s\"}}", good[i]);
        expect_ok(json);
    }
    static const char *const bad_addrs[] = {"8080", "host:",  "host:99999",
                                            ":80",  "a b:80", "[::1]8080"};
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"http\":{\"listen\":\"%s\"}}", bad_addrs[i]);
        expect_only(json,
                    "http.listen: must be \"host:port\" (IPv6 as \"[addr]:port\", port 0-65535)");
        snprintf(json, sizeof json, "{\"ws\":{\"listen\":\"%s\"}}", bad_addrs[i]);
        expect_only(json,
                    "ws.listen: must be \"host:port\" (IPv6 as \"[addr]:port\", port 0-65535)");
    }
}

static void test_listen_http_equals_ws(void **state)
{
    expect_only("{\"http\":{\"listen\":\"127.0.0.1:9000\"},\"ws\":{\"listen\":\"127.0.0.1:9000\"}}",
                "ws.listen: must differ from http.listen");
    /* Against a default. */
    expect_only("{\"ws\":{\"listen\":\"0.0.0.0:8080\"}}",
                "ws.listen: must differ from http.listen");
    /* Same port on different hosts, and port 0 twice (any free port), are fine. */
    expect_ok("{\"http\":{\"listen\":\"127.0.0.1:9000\"},\"ws\":{\"listen\":\"127.0.0.2:9000\"}}");
    expect_ok("{\"http\":{\"listen\":\"127.0.0.1:0\"},\"ws\":{\"listen\":\"127.0.0.1:0\"}}");
}

/* ---- NATS ---------------------------------------------------------------- */

static void test_nats_addr_overrides(void **state)
{
    env_set("NATS_ADDR", "nats://a:4222, b:4223 ,tls://c:4224");
    hr_config *c = ok("{\"nats\":{\"servers\":[\"nats://file:4222\"]}}");
    assert_int_equal(c->nnats_servers, 3);
    assert_string_equal(c->nats_servers[0], "nats://a:4222");
    assert_string_equal(c->nats_servers[1], "nats://b:4223");
    assert_string_equal(c->nats_servers[2], "tls://c:4224");
    config_free(c);

    /* Also over the default. */
    c = ok(NULL);
    assert_int_equal(c->nnats_servers, 3);
    config_free(c);

    fake_env_n = 0;
    env_set("NATS_ADDR", "nats1:4222");
    c = ok(NULL);
    assert_int_equal(c->nnats_servers, 1);
    assert_string_equal(c->nats_servers[0], "nats://nats1:4222");
    config_free(c);

    /* Empty NATS_ADDR = unset. */
    fake_env_n = 0;
    env_set("NATS_ADDR", "");
    c = ok("{\"nats\":{\"servers\":[\"nats://file:4222\"]}}");
    assert_int_equal(c->nnats_servers, 1);
    assert_string_equal(c->nats_servers[0], "nats://file:4222");
    config_free(c);
}

static void test_nats_addr_bad(void **state)
{
    env_set("NATS_ADDR", " , ,");
    config_problems p = bad("{}");
    assert_true(has_substr(&p, "NATS_ADDR: no NATS URL"));
    config_problems_free(&p);

    fake_env_n = 0;
    env_set("NATS_ADDR", "http://a:4222");
    expect_line("{}", "NATS_ADDR: must be a nats://, tls://, ws:// or wss:// URL");
}

static void test_nats_servers_bad(void **state)
{
    expect_only("{\"nats\":{\"servers\":[\"http://a:4222\"]}}",
                "nats.servers[0]: must be a nats://, tls://, ws:// or wss:// URL");
    expect_only("{\"nats\":{\"servers\":[\"nats://a:4222\",\"a:4222\"]}}",
                "nats.servers[1]: must be a nats://, tls://, ws:// or wss:// URL");
    expect_only("{\"nats\":{\"servers\":[\"nats://\"]}}",
                "nats.servers[0]: must be a nats://, tls://, ws:// or wss:// URL");
    expect_only("{\"nats\":{\"servers\":[]}}", "nats.servers: must list at least one URL");
    expect_ok("{\"nats\":{\"servers\":[\"ws://a:8080\",\"wss://b\"]}}");
}

static void test_nats_credentials(void **state)
{
    env_set("NU", "alice");
    env_set("NP", "pw");
    env_set("NT", "tok");
    hr_config *c = ok("{\"nats\":{\"user_env\":\"NU\",\"password_env\":\"NP\"}}");
    assert_string_equal(c->nats_user, "alice");
    assert_string_equal(c->nats_password, "pw");
    assert_null(c->nats_token);
    config_free(c);
    c = ok("{\"nats\":{\"token_env\":\"NT\"}}");
    assert_string_equal(c->nats_token, "tok");
    config_free(c);

    expect_only("{\"nats\":{\"token_env\":\"MISSING\"}}",
                "nats.token_env: environment variable MISSING is not set");
    env_set("EMPTY", "");
    expect_only("{\"nats\":{\"password_env\":\"EMPTY\"}}",
                "nats.password_env: environment variable EMPTY is empty");
    expect_only("{\"nats\":{\"token\":\"t\",\"token_env\":\"NT\"}}",
                "nats.token: give either token or token_env, not both");
    expect_only("{\"nats\":{\"user_env\":\"\"}}",
                "nats.user_env: must be the name of an environment variable");

    /* creds_file must be readable. */
    c = ok("{\"nats\":{\"creds_file\":\"" PEM_RSA "\"}}");
    assert_string_equal(c->nats_creds_file, PEM_RSA);
    config_free(c);
    expect_substrs("{\"nats\":{\"creds_file\":\"" HERALD_FIXTURES "\"}}",
                   "nats.creds_file: cannot read", "Is a directory", NULL);
    expect_substrs("{\"nats\":{\"creds_file\":\"/nonexistent/x.creds\"}}",
                   "nats.creds_file: cannot read /nonexistent/x.creds", NULL);
}

/* ---- JWT keys ------------------------------------------------------------ */

static void test_jwt_keys_good(void **state)
{
    env_set("JWT_SECRET", "0123456789abcdef0123456789abcdef");
    hr_config *c = ok("{\"auth\":{\"jwt\":{\"keys\":["
                      "{\"alg\":\"HS256\",\"secret_env\":\"JWT_SECRET\",\"kid\":\"h1\"},"
                      "{\"alg\":\"RS256\",\"public_key_file\":\"" PEM_RSA "\"},"
                      "{\"alg\":\"ES256\",\"public_key_file\":\"" PEM_EC "\",\"kid\":\"e1\"},"
                      "{\"alg\":\"HS256\",\"secret\":\"inline\"}]}}}");
    assert_int_equal(c->njwt_keys, 4);
    assert_string_equal(c->jwt_keys[0].alg, "HS256");
    assert_string_equal(c->jwt_keys[0].kid, "h1");
    assert_string_equal(c->jwt_keys[0].secret, "0123456789abcdef0123456789abcdef");
    assert_int_equal(c->jwt_keys[0].secret_len, 32);
    assert_null(c->jwt_keys[0].public_key_file);
    assert_string_equal(c->jwt_keys[1].alg, "RS256");
    assert_null(c->jwt_keys[1].kid);
    assert_null(c->jwt_keys[1].secret);
    assert_string_equal(c->jwt_keys[1].public_key_file, PEM_RSA);
    assert_string_equal(c->jwt_keys[2].alg, "ES256");
    assert_string_equal(c->jwt_keys[2].kid, "e1");
    assert_string_equal(c->jwt_keys[3].secret, "inline");
    config_free(c);
}

static void test_jwt_keys_bad(void **state)
{
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\"}]}}}",
                "auth.jwt.keys[0]: HS256 needs secret_env (or secret)");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret_env\":\"NOPE\"}]}}}",
                "auth.jwt.keys[0].secret_env: environment variable NOPE is not set");
    env_set("EMPTY", "");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret_env\":\"EMPTY\"}]}}}",
                "auth.jwt.keys[0].secret_env: environment variable EMPTY is empty");
    env_set("S", "x");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret\":\"a\","
                "\"secret_env\":\"S\"}]}}}",
                "auth.jwt.keys[0].secret: give either secret or secret_env, not both");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\"}]}}}",
                "auth.jwt.keys[0].public_key_file: is required for RS256");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"ES256\"}]}}}",
                "auth.jwt.keys[0].public_key_file: is required for ES256");
    expect_substrs("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\",\"public_key_file\":"
                   "\"/nonexistent/key.pem\"}]}}}",
                   "auth.jwt.keys[0].public_key_file: cannot read /nonexistent/key.pem", NULL);
    /* A directory is not a readable key file. */
    expect_substrs("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"ES256\",\"public_key_file\":"
                   "\"" HERALD_FIXTURES "/jwt\"}]}}}",
                   "auth.jwt.keys[0].public_key_file: cannot read", "Is a directory", NULL);
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"none\"}]}}}",
                "auth.jwt.keys[0].alg: must be one of HS256, RS256, ES256");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS512\",\"secret\":\"a\"}]}}}",
                "auth.jwt.keys[0].alg: must be one of HS256, RS256, ES256");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"secret\":\"a\"}]}}}",
                "auth.jwt.keys[0].alg: is required (HS256, RS256 or ES256)");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret\":\"a\","
                "\"public_key_file\":\"" PEM_RSA "\"}]}}}",
                "auth.jwt.keys[0]: public_key_file is for RS256/ES256 keys");
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\",\"secret\":\"a\","
                "\"public_key_file\":\"" PEM_RSA "\"}]}}}",
                "auth.jwt.keys[0]: secret is for HS256 keys");
    /* The index in the path is the key's. */
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret\":\"a\"},"
                "{\"alg\":\"HS256\"}]}}}",
                "auth.jwt.keys[1]: HS256 needs secret_env (or secret)");
}

/* ---- permissions --------------------------------------------------------- */

static void test_permissions(void **state)
{
    hr_config *c = ok("{\"permissions\":{\"roles\":{"
                      "\"anonymous\":{\"subscribe\":{\"allow\":[\"news.>\"]}},"
                      "\"user\":{\"subscribe\":{\"allow\":[\"users.{sub}.>\"]},"
                      "\"publish\":{\"allow\":[\"ui.{sub}.>\"]}}}}}");
    assert_true(perms_table_has_role(c->perms, "user"));
    assert_true(anon_can_subscribe(c, "news.>"));
    /* An explicit table replaces the default. */
    assert_false(anon_can_subscribe(c, "public.>"));
    config_free(c);

    expect_only("{\"permissions\":{\"roles\":{\"user\":{\"subscribe\":{\"allow\":[\"a.>.b\"]}}}}}",
                "permissions.roles.user.subscribe.allow[0]: invalid pattern");
    expect_only("{\"permissions\":{\"roles\":{\"user\":{\"subscribe\":{\"allow\":[\"ok.>\"],"
                "\"deny\":[\"foo*\"]}}}}}",
                "permissions.roles.user.subscribe.deny[0]: invalid pattern");
    expect_only("{\"permissions\":{\"roles\":{\"Bad Role\":{}}}}",
                "permissions.roles.Bad Role: invalid role name");
    expect_only("{\"permissions\":{\"roles\":{\"user\":{\"subscrbe\":{}}}}}",
                "permissions.roles.user.subscrbe: unknown key");
    expect_only(
        "{\"permissions\":{\"roles\":{\"user\":{\"publish\":{\"allow\":[\"u.{hdr:x}\"]}}}}}",
        "permissions.roles.user.publish.allow[0]: unknown placeholder {hdr:x}");
    expect_only("{\"permissions\":{\"roles\":{\"user\":[]}}}",
                "permissions.roles.user: must be an object");
    expect_only("{\"permissions\":[]}", "permissions: must be an object");
    /* Two bad patterns in two roles: both reported. */
    config_problems p =
        bad("{\"permissions\":{\"roles\":{\"a\":{\"subscribe\":{\"allow\":[\"x..y\"]}},"
            "\"b\":{\"publish\":{\"deny\":[\"*x\"]}}}}}");
    assert_int_equal(p.n, 2);
    for (size_t i = 0; i < p.n; i++)
        assert_non_null(strstr(p.lines[i], "permissions.roles."));
    config_problems_free(&p);
}

/* ---- webhooks ------------------------------------------------------------ */

static void test_webhooks_good(void **state)
{
    env_set("GITHUB_WEBHOOK_SECRET", "ghs");
    env_set("BILLING_SECRET", "whsec_AAAA");
    env_set("BILLING_SECRET_OLD", "whsec_BBBB");
    env_set("TOKEN_A", "bearer-a");
    hr_config *c = ok(
        "{\"webhooks\":{"
        "\"github\":{\"verify\":{\"scheme\":\"github\",\"secret_env\":\"GITHUB_WEBHOOK_SECRET\"},"
        "\"subject\":\"webhooks.github.{header:X-GitHub-Event}\"},"
        "\"billing\":{\"verify\":{\"scheme\":\"standard-webhooks\",\"secrets_env\":"
        "[\"BILLING_SECRET\",\"BILLING_SECRET_OLD\"],\"tolerance_s\":600},"
        "\"subject\":\"webhooks.billing.{+json:/type}\",\"delivery\":\"jetstream\","
        "\"type\":\"com.example.{json:/type}\"},"
        "\"custom_1\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\","
        "\"header\":\"X-Sig\",\"encoding\":\"base64\",\"prefix\":\"sha256=\"},"
        "\"subject\":\"webhooks.{source}.evt\",\"delivery\":\"core\","
        "\"publish\":{\"allow\":[\"webhooks.>\"],\"deny\":[\"webhooks.x\"]},"
        "\"max_body_bytes\":2048,\"content_types\":[\"application/json\",\"text/plain\"]},"
        "\"ci-bot\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_env\":[\"TOKEN_A\"],"
        "\"tokens_sha256\":[\""
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        "\"]},\"subject\":\"ci.{+header:X-Path}\"},"
        "\"slk\":{\"verify\":{\"scheme\":\"slack\",\"secret\":\"x\"},\"subject\":\"slack.in\"},"
        "\"strp\":{\"verify\":{\"scheme\":\"stripe\",\"secret\":\"x\"},\"subject\":\"stripe.in\"}"
        "}}");
    assert_int_equal(c->nwebhooks, 6);
    hr_webhook_conf *w = NULL;
    for (size_t i = 0; i < c->nwebhooks; i++) {
        w = &c->webhooks[i];
        if (strcmp(w->name, "github") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_GITHUB);
            assert_int_equal(w->nsecrets, 1);
            assert_string_equal(w->secrets[0], "ghs");
            assert_string_equal(w->subject, "webhooks.github.{header:X-GitHub-Event}");
            assert_null(w->type);
            assert_int_equal(w->delivery, DELIVERY_AUTO);
            assert_int_equal(w->max_body_bytes, 1048576);
            assert_null(w->content_types);
            assert_null(w->publish);
            assert_int_equal(w->tolerance_s, 300);
        } else if (strcmp(w->name, "billing") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_STANDARD_WEBHOOKS);
            assert_int_equal(w->nsecrets, 2);
            assert_string_equal(w->secrets[0], "whsec_AAAA");
            assert_string_equal(w->secrets[1], "whsec_BBBB");
            assert_int_equal(w->tolerance_s, 600);
            assert_int_equal(w->delivery, DELIVERY_JETSTREAM);
            assert_string_equal(w->type, "com.example.{json:/type}");
        } else if (strcmp(w->name, "custom_1") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_HMAC_SHA256);
            assert_string_equal(w->secrets[0], "k");
            assert_string_equal(w->header, "X-Sig");
            assert_int_equal(w->encoding, WV_ENC_BASE64);
            assert_string_equal(w->prefix, "sha256=");
            assert_int_equal(w->delivery, DELIVERY_CORE);
            assert_non_null(w->publish);
            assert_int_equal(w->max_body_bytes, 2048);
            assert_int_equal(w->ncontent_types, 2);
            assert_string_equal(w->content_types[1], "text/plain");
        } else if (strcmp(w->name, "ci-bot") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_BEARER);
            assert_int_equal(w->ntokens, 1);
            assert_string_equal(w->tokens[0], "bearer-a");
            assert_int_equal(w->ntokens_sha256, 1);
            assert_int_equal(w->nsecrets, 0);
        } else if (strcmp(w->name, "slk") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_SLACK);
        } else if (strcmp(w->name, "strp") == 0) {
            assert_int_equal(w->scheme, WV_SCHEME_STRIPE);
        } else {
            fail_msg("unexpected source %s", w->name);
        }
    }
    config_free(c);

    /* hmac-sha256 encoding defaults to hex. */
    c = ok("{\"webhooks\":{\"h\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\","
           "\"header\":\"X-Sig\"},\"subject\":\"a.b\"}}}");
    assert_int_equal(c->webhooks[0].encoding, WV_ENC_HEX);
    assert_null(c->webhooks[0].prefix);
    config_free(c);
}

#define GHV "\"verify\":{\"scheme\":\"github\",\"secret\":\"s\"}"

static void test_webhooks_source_and_subject(void **state)
{
    expect_only("{\"webhooks\":{\"GitHub\":{" GHV ",\"subject\":\"a.b\"}}}",
                "webhooks.GitHub: name \"GitHub\" must match [a-z0-9][a-z0-9_-]{0,63}");
    expect_only("{\"webhooks\":{\"_x\":{" GHV ",\"subject\":\"a.b\"}}}",
                "webhooks._x: name \"_x\" must match [a-z0-9][a-z0-9_-]{0,63}");
    expect_only("{\"webhooks\":{\"a.b\":{" GHV ",\"subject\":\"a.b\"}}}",
                "webhooks.a.b: name \"a.b\" must match [a-z0-9][a-z0-9_-]{0,63}");
    /* 64 characters are fine, 65 are not. */
    char json[512], line[512];
    char name[66];
    memset(name, 'a', 65);
    name[64] = '\0';
    snprintf(json, sizeof json, "{\"webhooks\":{\"%s\":{" GHV ",\"subject\":\"a.b\"}}}", name);
    expect_ok(json);
    name[64] = 'a';
    name[65] = '\0';
    snprintf(json, sizeof json, "{\"webhooks\":{\"%s\":{" GHV ",\"subject\":\"a.b\"}}}", name);
    snprintf(line, sizeof line, "webhooks.%s: name \"%s\" must match [a-z0-9][a-z0-9_-]{0,63}",
             name, name);
    expect_only(json, line);

    expect_only("{\"webhooks\":{\"github\":[]}}", "webhooks.github: must be an object");
    expect_only("{\"webhooks\":{\"github\":{" GHV "}}}", "webhooks.github.subject: is required");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"\"}}}",
                "webhooks.github.subject: must be a non-empty string");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.{hdr:X}\"}}}",
                "webhooks.github.subject: unknown placeholder {hdr:X}");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.{json:type}\"}}}",
                "webhooks.github.subject: unknown placeholder {json:type}");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.{header:}\"}}}",
                "webhooks.github.subject: unknown placeholder {header:}");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.{source\"}}}",
                "webhooks.github.subject: unterminated placeholder");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.source}\"}}}",
                "webhooks.github.subject: unbalanced '}'");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks..x\"}}}",
                "webhooks.github.subject: not a valid subject template");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.*\"}}}",
                "webhooks.github.subject: not a valid subject template");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.>\"}}}",
                "webhooks.github.subject: not a valid subject template");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"type\":\"t.{hdr:X}\"}}}",
                "webhooks.github.type: unknown placeholder {hdr:X}");
    /* The contract's example line. */
    config_problems p =
        bad("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"webhooks.github.{hdr:X}\"}}}");
    assert_true(has_substr(&p, "webhooks.github.subject: unknown placeholder {hdr:X}"));
    config_problems_free(&p);

    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"delivery\":\"fast\"}}}",
                "webhooks.github.delivery: must be one of auto, jetstream, core");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"publish\":[]}}}",
                "webhooks.github.publish: must be an object with allow/deny lists");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"publish\":"
                "{\"allow\":[\"a.>.b\"]}}}}",
                "webhooks.github.publish.allow[0]: invalid subject pattern \"a.>.b\"");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"publish\":"
                "{\"allow\":[\"a.>\"],\"alow\":[]}}}}",
                "webhooks.github.publish.alow: unknown key");
    expect_only("{\"webhooks\":{\"github\":{" GHV ",\"subject\":\"a.b\",\"content_types\":"
                "[\"json\"]}}}",
                "webhooks.github.content_types[0]: must be a media type like \"application/json\"");
}

static void test_webhooks_verify(void **state)
{
    expect_only("{\"webhooks\":{\"github\":{\"subject\":\"a.b\"}}}",
                "webhooks.github.verify: is required");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":\"github\",\"subject\":\"a.b\"}}}",
                "webhooks.github.verify: must be an object");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"secret\":\"s\"},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.scheme: is required");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"gitlab\",\"secret\":\"s\"},"
                "\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.scheme: must be one of standard-webhooks, github, stripe, "
                "slack, hmac-sha256, bearer");
    /* Keys not belonging to the scheme. */
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\","
                "\"header\":\"X-Sig\"},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.header: unknown key");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\","
                "\"tolerance_s\":300},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.tolerance_s: unknown key");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"secret\":\"s\","
                "\"tokens_sha256\":[\"0123456789abcdef0123456789abcdef0123456789abcdef012345678"
                "9abcdef\"]},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify.secret: unknown key");
    expect_only("{\"webhooks\":{\"s\":{\"verify\":{\"scheme\":\"stripe\",\"secret\":\"s\","
                "\"tokens_env\":[\"T\"]},\"subject\":\"a.b\"}}}",
                "webhooks.s.verify.tokens_env: unknown key");
    /* Secrets. */
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\"},\"subject\":"
                "\"a.b\"}}}",
                "webhooks.github.verify: github needs secret_env or secrets_env");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\",\"secret_env\":"
                "\"GITHUB_WEBHOOK_SECRET\"},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.secret_env: environment variable GITHUB_WEBHOOK_SECRET "
                "is not set");
    env_set("EMPTY", "");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\",\"secret_env\":"
                "\"EMPTY\"},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.secret_env: environment variable EMPTY is empty");
    env_set("GH", "x");
    expect_only("{\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\","
                "\"secret_env\":\"GH\"},\"subject\":\"a.b\"}}}",
                "webhooks.github.verify.secret: give either secret or secret_env, not both");
    env_set("OLD", "y");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secrets_env\":[\"GH\",\"MISSING_ONE\",\"OLD\"]},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secrets_env[1]: environment variable MISSING_ONE is not set");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secrets_env\":[\"GH\",\"EMPTY\"]},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secrets_env[1]: environment variable EMPTY is empty");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secret_env\":\"GH\",\"secrets_env\":[\"OLD\"]},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify: give secret_env or secrets_env, not both");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secrets_env\":\"GH\"},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secrets_env: must be an array of strings");
    /* bearer needs tokens. */
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\"},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify: bearer needs tokens_sha256 or tokens_env");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_sha256\":"
                "[\"ABCDEF\"]},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify.tokens_sha256[0]: must be a lowercase hex SHA-256 digest (64 "
                "characters)");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_env\":"
                "[\"GH\",\"NO_TOKEN\"]},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify.tokens_env[1]: environment variable NO_TOKEN is not set");
    /* An empty list names no secret or token: the source could never verify. */
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"stripe\",\"secrets_env\":[]},"
                "\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify: stripe needs secret_env or secrets_env");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_sha256\":[]},"
                "\"subject\":\"a.b\"}}}",
                "webhooks.b.verify: bearer needs tokens_sha256 or tokens_env");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_sha256\":[],"
                "\"tokens_env\":[]},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify: bearer needs tokens_sha256 or tokens_env");
    /* ...but one non-empty list is enough, and a malformed one is one problem. */
    expect_ok("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_sha256\":[],"
              "\"tokens_env\":[\"GH\"]},\"subject\":\"a.b\"}}}");
    expect_only("{\"webhooks\":{\"b\":{\"verify\":{\"scheme\":\"bearer\",\"tokens_env\":"
                "\"GH\"},\"subject\":\"a.b\"}}}",
                "webhooks.b.verify.tokens_env: must be an array of strings");
    /* hmac-sha256 needs header; encoding is hex or base64. */
    expect_only("{\"webhooks\":{\"h\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\"},"
                "\"subject\":\"a.b\"}}}",
                "webhooks.h.verify.header: is required for hmac-sha256");
    expect_only("{\"webhooks\":{\"h\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\","
                "\"header\":\"X-Sig\",\"encoding\":\"base32\"},\"subject\":\"a.b\"}}}",
                "webhooks.h.verify.encoding: must be one of hex, base64");
}

/* ---- the scheme table drives webhooks.<source>.verify ------------------- */

/* Every key any scheme may take (plus one no scheme takes), with a value of
 * the right type: whatever the table says a scheme takes is not an
 * "unknown key" for it, everything else is. */
static const struct {
    const char *key, *value;
} VERIFY_KEYS[] = {
    {"secret", "\"AAAA\""},
    {"secret_env", "\"ENV_S\""},
    {"secrets_env", "[\"ENV_S\"]"},
    {"tolerance_s", "60"},
    {"replay_window_s", "60"},
    {"header", "\"X-Sig\""},
    {"encoding", "\"hex\""},
    {"prefix", "\"p=\""},
    {"tokens_sha256", "[\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]"},
    {"tokens_env", "[\"ENV_S\"]"},
    {"bogus", "1"},
};

static void test_webhooks_scheme_keys(void **state)
{
    env_set("ENV_S", "AAAA");
    for (int sc = 0; sc < WV_SCHEME_COUNT; sc++) {
        const wv_scheme_info *info = wv_scheme_get((wv_scheme)sc);
        assert_non_null(info);
        assert_string_equal(info->name, wv_scheme_name((wv_scheme)sc));
        /* The table names no key this test (and the contract) does not know. */
        for (const char *const *k = info->config_keys; *k; k++) {
            bool known = false;
            for (size_t i = 0; i < sizeof VERIFY_KEYS / sizeof *VERIFY_KEYS; i++)
                known |= strcmp(VERIFY_KEYS[i].key, *k) == 0;
            assert_true(known);
        }
        assert_false(wv_scheme_has_key(info, "scheme"));
        assert_false(wv_scheme_has_key(info, "bogus"));
        for (size_t i = 0; i < sizeof VERIFY_KEYS / sizeof *VERIFY_KEYS; i++) {
            char json[512], line[160];
            snprintf(json, sizeof json,
                     "{\"webhooks\":{\"s\":{\"subject\":\"a.b\",\"verify\":{\"scheme\":\"%s\","
                     "\"%s\":%s}}}}",
                     info->name, VERIFY_KEYS[i].key, VERIFY_KEYS[i].value);
            snprintf(line, sizeof line, "webhooks.s.verify.%s: unknown key", VERIFY_KEYS[i].key);
            json_t *j = parse(json);
            config_problems p = {0};
            hr_config *c = config_from_json(j, fake_env, &p);
            json_decref(j);
            bool takes = wv_scheme_has_key(info, VERIFY_KEYS[i].key);
            if (takes == has_line(&p, line)) {
                dump(&p);
                fail_msg("%s: key %s %s", info->name, VERIFY_KEYS[i].key,
                         takes ? "refused as unknown" : "not refused");
            }
            /* A source with its scheme's required keys set loads. */
            if (c) {
                assert_int_equal(c->webhooks[0].scheme, sc);
                assert_ptr_equal(c->webhooks[0].scheme_info, info);
                assert_non_null(c->webhooks[0].verifier);
                assert_int_equal(wv_config_scheme(c->webhooks[0].verifier), sc);
            }
            config_free(c);
            config_problems_free(&p);
        }
    }
    /* Keys that are the scheme's: tolerance_s and replay_window_s are read
     * only where the table has them. */
    hr_config *c = ok("{\"webhooks\":{\"s\":{\"subject\":\"a.b\",\"verify\":{\"scheme\":"
                      "\"stripe\",\"secret\":\"k\",\"tolerance_s\":60,\"replay_window_s\":0}}}}");
    assert_int_equal(c->webhooks[0].tolerance_s, 60);
    assert_int_equal(c->webhooks[0].replay_window_s, 0);
    config_free(c);
    c = ok("{\"webhooks\":{\"s\":{\"subject\":\"a.b\",\"verify\":{\"scheme\":\"bearer\","
           "\"tokens_env\":[\"ENV_S\"]}}}}");
    assert_int_equal(c->webhooks[0].replay_window_s, 0);
    assert_int_equal(c->webhooks[0].ntokens, 1);
    config_free(c);
}

/* What config_load compiles for a source, and which bodies are parsed. */
static void test_webhooks_compiled(void **state)
{
    hr_config *c =
        ok("{\"webhooks\":{"
           "\"gh\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\"},\"subject\":\"gh.{header:X-"
           "E}\"},"
           "\"ghj\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\"},\"subject\":\"gh.{json:/"
           "t}\"},"
           "\"st\":{\"verify\":{\"scheme\":\"stripe\",\"secret\":\"s\"},\"subject\":\"st.x\"},"
           "\"st2\":{\"verify\":{\"scheme\":\"stripe\",\"secret\":\"s\"},\"subject\":\"st.x\","
           "\"id\":\"{header:X-Id}\",\"type\":\"t\"},"
           "\"st3\":{\"verify\":{\"scheme\":\"stripe\",\"secret\":\"s\"},\"subject\":\"st.x\","
           "\"id\":\"{header:X-Id}\"},"
           "\"sl\":{\"verify\":{\"scheme\":\"slack\",\"secret\":\"s\"},\"subject\":\"sl.x\","
           "\"id\":\"{header:X-Id}\",\"type\":\"t\"},"
           "\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\",\"secret\":\"whsec_AAAA\"},"
           "\"subject\":\"sw.x\",\"type\":\"t\",\"publish\":{\"allow\":[\"sw.>\"],\"deny\":[\"sw."
           "no\"]}}"
           "}}");
    for (size_t i = 0; i < c->nwebhooks; i++) {
        const hr_webhook_conf *w = &c->webhooks[i];
        assert_non_null(w->verifier);
        assert_non_null(w->subject_tmpl);
        assert_true((w->type != NULL) == (w->type_tmpl != NULL));
        assert_true((w->id != NULL) == (w->id_tmpl != NULL));
        bool tmpl = strcmp(w->name, "ghj") == 0;
        bool parse = tmpl || strcmp(w->name, "st") == 0 || strcmp(w->name, "st3") == 0 ||
                     strcmp(w->name, "sl") == 0;
        if (w->templates_read_body != tmpl || w->parse_body != parse)
            fail_msg("%s: templates_read_body %d parse_body %d", w->name, w->templates_read_body,
                     w->parse_body);
        if (strcmp(w->name, "sw") == 0) {
            assert_non_null(w->publish_perms);
            assert_true(perms_can_publish(w->publish_perms, S("sw.yes")));
            assert_false(perms_can_publish(w->publish_perms, S("sw.no")));
            assert_false(perms_can_publish(w->publish_perms, S("other")));
        } else {
            assert_null(w->publish_table);
            assert_null(w->publish_perms);
        }
    }
    assert_null(c->jwt);
    config_free(c);

    /* What used to pass --check-config and then fail at startup. */
    expect_only("{\"webhooks\":{\"gh\":{\"verify\":{\"scheme\":\"github\",\"secret\":\"s\"},"
                "\"subject\":\"gh.{json:/a{b}\"}}}",
                "webhooks.gh.subject: '{' inside placeholder {json:/a{b}");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secret\":\"whsec_not*base64\"},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secret: not valid base64");
    env_set("SW_GOOD", "whsec_AAAA");
    env_set("SW_BAD", "whsec_!!!!");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secret_env\":\"SW_BAD\"},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secret_env: not valid base64");
    expect_only("{\"webhooks\":{\"sw\":{\"verify\":{\"scheme\":\"standard-webhooks\","
                "\"secrets_env\":[\"SW_GOOD\",\"SW_BAD\"]},\"subject\":\"a.b\"}}}",
                "webhooks.sw.verify.secrets_env[1]: not valid base64");
    expect_only("{\"webhooks\":{\"h\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\","
                "\"header\":\"X Sig\"},\"subject\":\"a.b\"}}}",
                "webhooks.h.verify.header: not a valid header name");
    expect_only("{\"webhooks\":{\"h\":{\"verify\":{\"scheme\":\"hmac-sha256\",\"secret\":\"k\","
                "\"header\":\"X-Sig\",\"prefix\":\"a b\"},\"subject\":\"a.b\"}}}",
                "webhooks.h.verify.prefix: must be printable ASCII without spaces");
    /* More secrets than a verifier holds: startup used to drop the extra
     * ones silently; now it is a problem. */
    env_set("SW_A", "whsec_AAAA");
    char json[1024] = "{\"webhooks\":{\"sw\":{\"subject\":\"a.b\",\"verify\":{\"scheme\":"
                      "\"standard-webhooks\",\"secrets_env\":[";
    for (int i = 0; i <= WV_MAX_SECRETS; i++)
        strcat(json, i ? ",\"SW_A\"" : "\"SW_A\"");
    strcat(json, "]}}}}");
    expect_only(json, "webhooks.sw.verify.secrets_env: at most 16 secrets");
    /* Every source's problems at once, each with its path. */
    config_problems p =
        bad("{\"webhooks\":{\"a\":{\"verify\":{\"scheme\":\"standard-webhooks\",\"secret\":\"x\"},"
            "\"subject\":\"a.{json:/a{b}\",\"type\":\"{hdr:x}\"},"
            "\"b\":{\"verify\":{\"scheme\":\"standard-webhooks\",\"secret\":\"!\"},"
            "\"subject\":\"b.c\",\"publish\":{\"allow\":[\"b.{sub\"]}}}}");
    assert_true(has_line(&p, "webhooks.a.subject: '{' inside placeholder {json:/a{b}"));
    assert_true(has_line(&p, "webhooks.a.type: unknown placeholder {hdr:x}"));
    assert_true(has_line(&p, "webhooks.a.verify.secret: not valid base64"));
    assert_true(has_line(&p, "webhooks.b.verify.secret: not valid base64"));
    assert_true(has_substr(&p, "webhooks.b.publish.allow[0]: "));
    config_problems_free(&p);
}

/* The JWT verifier is compiled at load: a key file that is there but holds
 * no usable key is a problem at auth.jwt.keys[i]. */
static void test_jwt_compiled(void **state)
{
    hr_config *c = ok("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"ES256\",\"public_key_file\":"
                      "\"" PEM_EC "\"}]}}}");
    assert_non_null(c->jwt);
    config_free(c);
    expect_substrs("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\",\"public_key_file\":"
                   "\"" HERALD_FIXTURES "/jwt/tokens.json\"}]}}}",
                   "auth.jwt.keys[0]: ", "no PEM public key", NULL);
    expect_substrs("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\",\"public_key_file\":"
                   "\"" HERALD_FIXTURES "/jwt/rsa_a_private.pem\"}]}}}",
                   "auth.jwt.keys[0]: ", "private key", NULL);
    expect_substrs("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"RS256\",\"public_key_file\":"
                   "\"" PEM_EC "\"}]}}}",
                   "auth.jwt.keys[0]: ", "RS256 needs an RSA public key", NULL);
    expect_only("{\"auth\":{\"jwt\":{\"keys\":[{\"alg\":\"HS256\",\"secret\":\"a\",\"kid\":\"k\"},"
                "{\"alg\":\"HS256\",\"secret\":\"b\",\"kid\":\"k\"}]}}}",
                "auth.jwt.keys[1]: kid \"k\" already used by keys[0]");
}

/* ---- publish_api, history, limits, log ---------------------------------- */

#define HEX64     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ROLES_SVC "\"permissions\":{\"roles\":{\"svc\":{\"publish\":{\"allow\":[\"svc.>\"]}}}}"

static void test_publish_api(void **state)
{
    hr_config *c = ok("{" ROLES_SVC ",\"publish_api\":{\"max_body_bytes\":4096,\"api_keys\":"
                      "[{\"name\":\"billing\",\"sha256\":\"" HEX64 "\",\"roles\":[\"svc\"]}]}}");
    assert_int_equal(c->napi_keys, 1);
    assert_string_equal(c->api_keys[0].name, "billing");
    assert_string_equal(c->api_keys[0].sha256, HEX64);
    assert_int_equal(c->api_keys[0].nroles, 1);
    assert_string_equal(c->api_keys[0].roles[0], "svc");
    assert_int_equal(c->publish_max_body_bytes, 4096);
    config_free(c);

    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":"
                "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\","
                "\"roles\":[\"svc\"]}]}}",
                "publish_api.api_keys[0].sha256: must be a lowercase hex SHA-256 digest (64 "
                "characters)");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":"
                "\"abc\",\"roles\":[\"svc\"]}]}}",
                "publish_api.api_keys[0].sha256: must be a lowercase hex SHA-256 digest (64 "
                "characters)");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":\"" HEX64
                "\",\"roles\":[\"svc\",\"admin\"]}]}}",
                "publish_api.api_keys[0].roles[1]: unknown role \"admin\"");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"sha256\":\"" HEX64
                "\",\"roles\":[\"svc\"]}]}}",
                "publish_api.api_keys[0].name: is required");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\","
                "\"roles\":[\"svc\"]}]}}",
                "publish_api.api_keys[0].sha256: is required");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":\"" HEX64
                "\"}]}}",
                "publish_api.api_keys[0].roles: is required");
    expect_only("{" ROLES_SVC ",\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":\"" HEX64
                "\",\"roles\":[\"svc\"],\"role\":\"svc\"}]}}",
                "publish_api.api_keys[0].role: unknown key");
    /* The default table has only "anonymous". */
    expect_only("{\"publish_api\":{\"api_keys\":[{\"name\":\"k\",\"sha256\":\"" HEX64
                "\",\"roles\":[\"svc\"]}]}}",
                "publish_api.api_keys[0].roles[0]: unknown role \"svc\"");
}

static void test_history(void **state)
{
    hr_config *c = ok("{\"history\":[{\"stream\":\"EVENTS\",\"subjects\":[\"deployments.>\","
                      "\"users.*.events\"]},{\"stream\":\"AUDIT\",\"subjects\":[\"audit.>\"]}]}");
    assert_int_equal(c->nhistory, 2);
    assert_string_equal(c->history[0].stream, "EVENTS");
    assert_int_equal(c->history[0].nsubjects, 2);
    assert_string_equal(c->history[0].subjects[1], "users.*.events");
    assert_string_equal(c->history[1].stream, "AUDIT");
    config_free(c);

    expect_only("{\"history\":[{\"stream\":\"E\",\"subjects\":[\"a.>.b\"]}]}",
                "history[0].subjects[0]: invalid subject pattern \"a.>.b\"");
    expect_only("{\"history\":[{\"stream\":\"E\",\"subjects\":[\"ok\",\"foo*\"]}]}",
                "history[0].subjects[1]: invalid subject pattern \"foo*\"");
    expect_only("{\"history\":[{\"subjects\":[\"a.>\"]}]}", "history[0].stream: is required");
    expect_only("{\"history\":[{\"stream\":\"E\"}]}", "history[0].subjects: is required");
    expect_only("{\"history\":[{\"stream\":\"E.V\",\"subjects\":[\"a\"]}]}",
                "history[0].stream: is not a valid stream name");
    expect_only("{\"history\":[{\"stream\":\"A\",\"subjects\":[\"a\"]},{\"stream\":\"B\","
                "\"subjects\":\"b\"}]}",
                "history[1].subjects: must be an array of strings");
}

static void test_limits(void **state)
{
    hr_config *c = ok("{\"limits\":{\"ws_upgrades_per_ip\":{\"rate_per_s\":0.5,\"burst\":3},"
                      "\"http_requests_per_ip\":{\"rate_per_s\":20},"
                      "\"ws_messages_per_session\":{\"rate_per_s\":100,\"burst\":200},"
                      "\"max_ws_connections\":5000,\"max_ws_connections_per_ip\":20}}");
    assert_true(c->ws_upgrades_per_ip.on);
    assert_true(c->ws_upgrades_per_ip.rate_per_s == 0.5);
    assert_int_equal(c->ws_upgrades_per_ip.burst, 3);
    assert_true(c->http_requests_per_ip.on);
    assert_true(c->http_requests_per_ip.rate_per_s == 20.0);
    assert_true(c->http_requests_per_ip.burst >= 1);
    assert_true(c->ws_messages_per_session.on);
    assert_int_equal(c->ws_messages_per_session.burst, 200);
    assert_int_equal(c->max_ws_connections, 5000);
    assert_int_equal(c->max_ws_connections_per_ip, 20);
    config_free(c);

    expect_only("{\"limits\":{\"ws_upgrades_per_ip\":10}}",
                "limits.ws_upgrades_per_ip: must be {\"rate_per_s\": number, \"burst\": integer}");
    expect_only("{\"limits\":{\"http_requests_per_ip\":{\"rate_per_s\":0}}}",
                "limits.http_requests_per_ip.rate_per_s: must be a number above 0 and at most "
                "1000000");
    expect_only("{\"limits\":{\"http_requests_per_ip\":{\"rate_per_s\":-1}}}",
                "limits.http_requests_per_ip.rate_per_s: must be a number above 0 and at most "
                "1000000");
    expect_only("{\"limits\":{\"http_requests_per_ip\":{\"rate_per_s\":\"10\"}}}",
                "limits.http_requests_per_ip.rate_per_s: must be a number above 0 and at most "
                "1000000");
    expect_only("{\"limits\":{\"ws_messages_per_session\":{\"burst\":10}}}",
                "limits.ws_messages_per_session.rate_per_s: must be a number above 0 and at most "
                "1000000");
    expect_only("{\"limits\":{\"ws_messages_per_session\":{\"rate_per_s\":1000001}}}",
                "limits.ws_messages_per_session.rate_per_s: must be a number above 0 and at most "
                "1000000");
    expect_only("{\"limits\":{\"ws_messages_per_session\":{\"rate_per_s\":5,\"burst\":1.5}}}",
                "limits.ws_messages_per_session.burst: must be an integer between 1 and 1000000");
}

static void test_log_level(void **state)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"debug", HLOG_DEBUG}, {"info", HLOG_INFO}, {"warn", HLOG_WARN}, {"error", HLOG_ERROR}};
    for (size_t i = 0; i < 4; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"log\":{\"level\":\"%s\"}}", levels[i].name);
        hr_config *c = ok(json);
        assert_int_equal(c->log_level, levels[i].level);
        config_free(c);
    }
    expect_only("{\"log\":{\"level\":\"verbose\"}}",
                "log.level: must be one of debug, info, warn, error");
    expect_only("{\"log\":{\"level\":\"INFO\"}}",
                "log.level: must be one of debug, info, warn, error");
    expect_only("{\"log\":{\"level\":1}}", "log.level: must be one of debug, info, warn, error");

    /* HERALD_LOG_LEVEL overrides the file. */
    env_set("HERALD_LOG_LEVEL", "debug");
    hr_config *c = ok("{\"log\":{\"level\":\"error\"}}");
    assert_int_equal(c->log_level, HLOG_DEBUG);
    config_free(c);
    c = ok(NULL);
    assert_int_equal(c->log_level, HLOG_DEBUG);
    config_free(c);
    fake_env_n = 0;
    env_set("HERALD_LOG_LEVEL", "");
    c = ok("{\"log\":{\"level\":\"warn\"}}");
    assert_int_equal(c->log_level, HLOG_WARN);
    config_free(c);
    fake_env_n = 0;
    env_set("HERALD_LOG_LEVEL", "loud");
    expect_only("{}", "HERALD_LOG_LEVEL: must be one of debug, info, warn, error");
}

static void test_static_dir_env(void **state)
{
    env_set("HERALD_STATIC_DIR", "/opt/static");
    hr_config *c = ok(NULL);
    assert_string_equal(c->static_dir, "/opt/static");
    config_free(c);
}

/* ---- all problems at once ------------------------------------------------ */

static void test_all_problems_at_once(void **state)
{
    config_problems p = bad("{\"ws\":{\"max_frme_bytes\":1,\"ping_interval_s\":0},"
                            "\"http\":{\"listen\":\"8080\"},"
                            "\"log\":{\"level\":\"loud\"},"
                            "\"webhooks\":{\"github\":{\"verify\":{\"scheme\":\"github\","
                            "\"secret\":\"s\"},\"subject\":\"webhooks.github.{hdr:X}\"}}}");
    if (p.n != 5)
        dump(&p);
    assert_int_equal(p.n, 5);
    assert_true(has_line(&p, "ws.max_frme_bytes: unknown key"));
    assert_true(has_line(&p, "ws.ping_interval_s: must be an integer between 1 and 3600"));
    assert_true(
        has_line(&p, "http.listen: must be \"host:port\" (IPv6 as \"[addr]:port\", port 0-65535)"));
    assert_true(has_line(&p, "log.level: must be one of debug, info, warn, error"));
    assert_true(has_line(&p, "webhooks.github.subject: unknown placeholder {hdr:X}"));
    config_problems_free(&p);
}

static void test_problems_accumulate(void **state)
{
    /* A caller may reuse one problems list; lines are appended. */
    config_problems p = {0};
    json_t *j = parse("{\"shutdown_timeout_s\":0}");
    assert_null(config_from_json(j, fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_null(config_from_json(j, fake_env, &p));
    assert_int_equal(p.n, 2);
    json_decref(j);
    config_problems_free(&p);
    assert_int_equal(p.n, 0);
    assert_null(p.lines);
}

/* ---- config_load --------------------------------------------------------- */

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/herald-test-config-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_load_missing_file(void **state)
{
    config_problems p = {0};
    assert_null(config_load("/nonexistent/herald.json", fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], "/nonexistent/herald.json"));
    config_problems_free(&p);
}

static void test_load_null_path(void **state)
{
    config_problems p = {0};
    hr_config *c = config_load(NULL, fake_env, &p);
    assert_non_null(c);
    assert_int_equal(p.n, 0);
    assert_int_equal(c->http_listen.port, 8080);
    config_free(c);
    config_problems_free(&p);
}

/* config_load_buffer: the same load from memory (fuzzing, tests). */
static void test_load_buffer(void **state)
{
    static const char good[] = "{\"webhooks\":{\"gh\":{\"verify\":{\"scheme\":\"github\","
                               "\"secret\":\"s\"},\"subject\":\"gh.{header:X-E}\"}}}";
    config_problems p = {0};
    hr_config *c = config_load_buffer(good, strlen(good), "mem", fake_env, &p);
    assert_non_null(c);
    assert_int_equal(p.n, 0);
    assert_non_null(c->webhooks[0].verifier);
    config_free(c);
    /* Not NUL-terminated: only len bytes are read. */
    char bad[] = {'{', '"', 'w', 's', '"', ':', '1', '}', '}'};
    assert_null(config_load_buffer(bad, 8, "mem", fake_env, &p));
    assert_true(has_line(&p, "ws: must be an object"));
    config_problems_free(&p);
    assert_null(config_load_buffer(bad, sizeof bad, "mem", fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], "invalid JSON in mem at line 1"));
    config_problems_free(&p);
}

static void test_load_invalid_json(void **state)
{
    char *path = write_temp("{\n  \"ws\": {\n    \"listen\": \"127.0.0.1:0\",\n  }\n}\n");
    config_problems p = {0};
    assert_null(config_load(path, fake_env, &p));
    if (p.n != 1)
        dump(&p);
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], path));
    assert_non_null(strstr(p.lines[0], "line 4"));
    assert_non_null(strstr(p.lines[0], "column"));
    config_problems_free(&p);
    unlink(path);
    free(path);

    path = write_temp("");
    assert_null(config_load(path, fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], "line"));
    config_problems_free(&p);
    unlink(path);
    free(path);
}

static void test_load_duplicate_keys(void **state)
{
    char *path = write_temp("{\"shutdown_timeout_s\": 5, \"shutdown_timeout_s\": 6}");
    config_problems p = {0};
    assert_null(config_load(path, fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], "duplicate"));
    assert_non_null(strstr(p.lines[0], "line"));
    config_problems_free(&p);
    unlink(path);
    free(path);

    /* Nested too. */
    path = write_temp("{\"ws\": {\"listen\": \"127.0.0.1:1\", \"listen\": \"127.0.0.1:2\"}}");
    assert_null(config_load(path, fake_env, &p));
    assert_int_equal(p.n, 1);
    assert_non_null(strstr(p.lines[0], "duplicate"));
    config_problems_free(&p);
    unlink(path);
    free(path);
}

static void test_load_valid_file(void **state)
{
    env_set("GITHUB_WEBHOOK_SECRET", "ghs");
    env_set("JWT_SECRET", "jwtsecret");
    char *path = write_temp(
        "{\n"
        "  \"http\": {\"listen\": \"127.0.0.1:0\", \"retry_after_s\": 7},\n"
        "  \"ws\": {\"listen\": \"127.0.0.1:0\", \"max_subscriptions\": 50,\n"
        "          \"allowed_origins\": [\"https://app.example.com\"]},\n"
        "  \"nats\": {\"servers\": [\"nats://10.0.0.1:4222\"], \"name\": \"herald-1\"},\n"
        "  \"auth\": {\"jwt\": {\"keys\": [{\"alg\": \"HS256\", \"secret_env\": \"JWT_SECRET\"},\n"
        "                              {\"alg\": \"RS256\", \"public_key_file\": \"" PEM_RSA
        "\"}],\n"
        "                     \"issuer\": \"https://id.example.com\", \"leeway_s\": 0}},\n"
        "  \"permissions\": {\"roles\": {\n"
        "    \"anonymous\": {\"subscribe\": {\"allow\": [\"public.>\"]}},\n"
        "    \"user\": {\"subscribe\": {\"allow\": [\"deployments.{sub}.>\", \"users.{sub}.>\"],\n"
        "                            \"deny\": [\"deployments.*.internal\", "
        "\"deployments.*.internal.>\"]},\n"
        "             \"publish\": {\"allow\": [\"ui.{sub}.>\"]}},\n"
        "    \"operator\": {\"subscribe\": {\"allow\": [\">\"]}}}},\n"
        "  \"webhooks\": {\"github\": {\"verify\": {\"scheme\": \"github\", \"secret_env\": "
        "\"GITHUB_WEBHOOK_SECRET\"},\n"
        "                           \"subject\": \"webhooks.github.{header:X-GitHub-Event}\"}},\n"
        "  \"publish_api\": {\"api_keys\": [{\"name\": \"ops\", \"sha256\": \"" HEX64
        "\", \"roles\": [\"operator\"]}]},\n"
        "  \"history\": [{\"stream\": \"DEPLOYMENTS\", \"subjects\": [\"deployments.>\"]}],\n"
        "  \"limits\": {\"max_ws_connections\": 100},\n"
        "  \"log\": {\"level\": \"warn\"},\n"
        "  \"shutdown_timeout_s\": 3\n"
        "}\n");
    config_problems p = {0};
    hr_config *c = config_load(path, fake_env, &p);
    if (!c)
        dump(&p);
    assert_non_null(c);
    assert_int_equal(p.n, 0);
    assert_string_equal(c->http_listen.host, "127.0.0.1");
    assert_int_equal(c->http_listen.port, 0);
    assert_int_equal(c->http_retry_after_s, 7);
    assert_int_equal(c->ws_max_subscriptions, 50);
    assert_int_equal(c->nallowed_origins, 1);
    assert_string_equal(c->nats_servers[0], "nats://10.0.0.1:4222");
    assert_string_equal(c->nats_name, "herald-1");
    assert_int_equal(c->njwt_keys, 2);
    assert_string_equal(c->jwt_keys[0].secret, "jwtsecret");
    assert_string_equal(c->jwt_issuer, "https://id.example.com");
    assert_int_equal(c->jwt_leeway_s, 0);
    assert_true(perms_table_has_role(c->perms, "operator"));
    assert_int_equal(c->nwebhooks, 1);
    assert_string_equal(c->webhooks[0].secrets[0], "ghs");
    assert_int_equal(c->napi_keys, 1);
    assert_int_equal(c->nhistory, 1);
    assert_int_equal(c->max_ws_connections, 100);
    assert_int_equal(c->log_level, HLOG_WARN);
    assert_int_equal(c->shutdown_timeout_s, 3);
    const char *roles[] = {"user"};
    json_t *claims = json_pack("{s:s}", "sub", "u42");
    perms_set *s = perms_set_new(c->perms, roles, 1, claims);
    assert_true(perms_can_subscribe(s, S("deployments.u42.>")));
    assert_false(perms_can_deliver(s, S("deployments.u42.internal")));
    assert_true(perms_can_publish(s, S("ui.u42.click")));
    perms_set_free(s);
    json_decref(claims);
    config_free(c);
    config_problems_free(&p);

    /* The same file with a missing secret: a problem, not a silent allow. */
    fake_env_n = 0;
    env_set("JWT_SECRET", "jwtsecret");
    c = config_load(path, fake_env, &p);
    assert_null(c);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.lines[0], "webhooks.github.verify.secret_env: environment variable "
                                    "GITHUB_WEBHOOK_SECRET is not set");
    config_problems_free(&p);
    unlink(path);
    free(path);
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    hr_config *c = ok("{}");
    assert_int_equal(c->ntrusted_proxies, 0);
    config_free(c);
    c = ok("{\"http\":{\"trusted_proxies\":[]}}");
    assert_int_equal(c->ntrusted_proxies, 0);
    config_free(c);
    c = ok("{\"http\":{\"trusted_proxies\":[\"10.0.0.0/8\",\"fd00::/8\",\"127.0.0.1\"]}}");
    assert_int_equal(c->ntrusted_proxies, 3);
    assert_true(cip_trusted(c->trusted_proxies, c->ntrusted_proxies, "10.9.8.7"));
    assert_true(cip_trusted(c->trusted_proxies, c->ntrusted_proxies, "fd00::5"));
    assert_false(cip_trusted(c->trusted_proxies, c->ntrusted_proxies, "127.0.0.2"));
    config_free(c);
    expect_only("{\"http\":{\"trusted_proxies\":[\"10.0.0.0/8\",\"10.0.0.0/33\"]}}",
                "http.trusted_proxies[1]: must be an IPv4 or IPv6 address or CIDR like "
                "\"10.0.0.0/8\"");
    expect_only("{\"http\":{\"trusted_proxies\":\"10.0.0.0/8\"}}",
                "http.trusted_proxies: must be an array of strings");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_null_root, setup),
        cmocka_unit_test_setup(test_defaults_empty_object, setup),
        cmocka_unit_test_setup(test_trusted_proxies, setup),
        cmocka_unit_test_setup(test_default_permissions, setup),
        cmocka_unit_test_setup(test_root_not_object, setup),
        cmocka_unit_test_setup(test_unknown_keys, setup),
        cmocka_unit_test_setup(test_wrong_types, setup),
        cmocka_unit_test_setup(test_valid_values_stored, setup),
        cmocka_unit_test_setup(test_auth_cookie_requires_allowed_origins, setup),
        cmocka_unit_test_setup(test_http_deadlines_and_connection_limits, setup),
        cmocka_unit_test_setup(test_int_ranges, setup),
        cmocka_unit_test_setup(test_parse_listen_good, setup),
        cmocka_unit_test_setup(test_parse_listen_bad, setup),
        cmocka_unit_test_setup(test_listen_in_config, setup),
        cmocka_unit_test_setup(test_listen_http_equals_ws, setup),
        cmocka_unit_test_setup(test_nats_addr_overrides, setup),
        cmocka_unit_test_setup(test_nats_addr_bad, setup),
        cmocka_unit_test_setup(test_nats_servers_bad, setup),
        cmocka_unit_test_setup(test_nats_credentials, setup),
        cmocka_unit_test_setup(test_jwt_keys_good, setup),
        cmocka_unit_test_setup(test_jwt_keys_bad, setup),
        cmocka_unit_test_setup(test_permissions, setup),
        cmocka_unit_test_setup(test_webhooks_good, setup),
        cmocka_unit_test_setup(test_webhooks_source_and_subject, setup),
        cmocka_unit_test_setup(test_webhooks_verify, setup),
        cmocka_unit_test_setup(test_webhooks_scheme_keys, setup),
        cmocka_unit_test_setup(test_webhooks_compiled, setup),
        cmocka_unit_test_setup(test_jwt_compiled, setup),
        cmocka_unit_test_setup(test_publish_api, setup),
        cmocka_unit_test_setup(test_history, setup),
        cmocka_unit_test_setup(test_limits, setup),
        cmocka_unit_test_setup(test_log_level, setup),
        cmocka_unit_test_setup(test_static_dir_env, setup),
        cmocka_unit_test_setup(test_all_problems_at_once, setup),
        cmocka_unit_test_setup(test_problems_accumulate, setup),
        cmocka_unit_test_setup(test_load_missing_file, setup),
        cmocka_unit_test_setup(test_load_null_path, setup),
        cmocka_unit_test_setup(test_load_invalid_json, setup),
        cmocka_unit_test_setup(test_load_buffer, setup),
        cmocka_unit_test_setup(test_load_duplicate_keys, setup),
        cmocka_unit_test_setup(test_load_valid_file, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
