/* Unit tests for perms.c: the contract §2 table, templates, deny semantics,
 * union of roles and configuration problems. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/perms.h"
#include "herald/subject.h"

#define S(x) (x), strlen(x)

/* ---- helpers ------------------------------------------------------------- */

#define MAX_REPORTS 64

typedef struct {
    size_t n;
    char lines[MAX_REPORTS][256]; /* "path: msg" */
} reports;

static void collect(void *ctx, const char *path, const char *msg)
{
    reports *r = ctx;
    assert_true(r->n < MAX_REPORTS);
    snprintf(r->lines[r->n++], sizeof r->lines[0], "%s: %s", path, msg);
}

static bool has_report(const reports *r, const char *line)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->lines[i], line) == 0)
            return true;
    }
    return false;
}

static void dump_reports(const reports *r)
{
    for (size_t i = 0; i < r->n; i++)
        print_message("report: %s\n", r->lines[i]);
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j)
        fail_msg("bad test JSON: %s (line %d): %s", err.text, err.line, text);
    return j;
}

/* Build a table from JSON text; asserts it is valid. */
static perms_table *table(const char *text)
{
    reports r = {0};
    json_t *j = parse(text);
    perms_table *t = NULL;
    perms_table_new(&t, j, collect, &r);
    json_decref(j);
    if (!t || r.n) {
        dump_reports(&r);
        fail_msg("table rejected: %s", text);
    }
    return t;
}

/* Build a table that must be rejected; its reports go to *r. */
static void table_bad(const char *text, reports *r)
{
    memset(r, 0, sizeof *r);
    json_t *j = parse(text);
    perms_table *t = NULL;
    perms_table_new(&t, j, collect, r);
    json_decref(j);
    assert_null(t);
    assert_true(r->n > 0);
}

/* One principal: comma-separated role names, claims as JSON text (or NULL). */
static perms_set *set(const perms_table *t, const char *roles_csv, const char *claims_text)
{
    const char *roles[16];
    char buf[256];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", roles_csv);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save))
        roles[n++] = tok;
    json_t *claims = claims_text ? parse(claims_text) : NULL;
    perms_set *s = perms_set_new(t, roles, n, claims);
    json_decref(claims); /* the set keeps nothing from the claims or names */
    assert_non_null(s);
    return s;
}

static bool sub(const perms_set *s, const char *p)
{
    return perms_can_subscribe(s, S(p));
}

static bool dlv(const perms_set *s, const char *subj)
{
    return perms_can_deliver(s, S(subj));
}

static bool pub(const perms_set *s, const char *subj)
{
    return perms_can_publish(s, S(subj));
}

static const char *const contract_roles =
    "{"
    "\"anonymous\": {\"subscribe\": {\"allow\": [\"public.>\"]}},"
    "\"user\": {"
    "  \"subscribe\": {\"allow\": [\"deployments.{sub}.>\", \"users.{sub}.>\"],"
    "                \"deny\": [\"deployments.*.internal\", \"deployments.*.internal.>\"]},"
    "  \"publish\": {\"allow\": [\"ui.{sub}.>\"]}"
    "},"
    "\"operator\": {\"subscribe\": {\"allow\": [\">\"]}}"
    "}";

/* ---- the contract example ------------------------------------------------ */

static void test_contract_anonymous(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    perms_set *s = set(t, "anonymous", NULL);

    assert_true(sub(s, "public.>"));
    assert_true(sub(s, "public.news"));
    assert_true(sub(s, "public.*"));
    assert_true(sub(s, "public.*.x"));
    assert_true(sub(s, "public.a.>"));
    assert_false(sub(s, "public")); /* public.> needs one more token */
    assert_false(sub(s, ">"));
    assert_false(sub(s, "*.news"));
    assert_false(sub(s, "*.>"));
    assert_false(sub(s, "publicity.x"));
    assert_false(sub(s, "deployments.u42.>"));
    assert_false(sub(s, "users.u42.x"));

    assert_true(dlv(s, "public.news"));
    assert_true(dlv(s, "public.a.b.c"));
    assert_false(dlv(s, "public"));
    assert_false(dlv(s, "deployments.u42.x"));

    assert_false(pub(s, "public.news"));
    assert_false(pub(s, "ui.x.y"));

    perms_set_free(s);
    perms_table_free(t);
}

static void test_contract_user(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    perms_set *s = set(t, "user", "{\"sub\": \"u42\", \"exp\": 1767225600}");

    /* allowed subscriptions */
    assert_true(sub(s, "deployments.u42.>"));
    assert_true(sub(s, "deployments.u42.build"));
    assert_true(sub(s, "deployments.u42.*"));
    assert_true(sub(s, "deployments.u42.*.status"));
    assert_true(sub(s, "deployments.u42.build.>"));
    assert_true(sub(s, "deployments.u42.internal2"));
    assert_true(sub(s, "users.u42.>"));
    assert_true(sub(s, "users.u42.profile"));

    /* forbidden: others' subjects, broader than allowed, wholly denied */
    assert_false(sub(s, "deployments.u43.>"));
    assert_false(sub(s, "deployments.>"));
    assert_false(sub(s, "deployments.*.>"));
    assert_false(sub(s, "deployments.*.build"));
    assert_false(sub(s, ">"));
    assert_false(sub(s, "deployments.u42"));
    assert_false(sub(s, "users.u42"));
    assert_false(sub(s, "deployments.u42.internal"));
    assert_false(sub(s, "deployments.u42.internal.>"));
    assert_false(sub(s, "deployments.u42.internal.x"));
    assert_false(sub(s, "deployments.u42.internal.*"));
    assert_false(sub(s, "public.>"));            /* not the anonymous role */
    assert_false(sub(s, "ui.u42.>"));            /* publish rights do not grant subscribe */
    assert_false(sub(s, "deployments.{sub}.>")); /* the literal template is not a subject */

    /* invalid input is refused, not matched */
    assert_false(sub(s, "deployments.u42.x>"));
    assert_false(sub(s, "deployments.u42.>.x"));
    assert_false(sub(s, ""));

    /* delivery */
    assert_true(dlv(s, "deployments.u42.build"));
    assert_true(dlv(s, "deployments.u42.build.7"));
    assert_true(dlv(s, "deployments.u42.internal2"));
    assert_true(dlv(s, "users.u42.profile"));
    assert_false(dlv(s, "deployments.u42.internal"));
    assert_false(dlv(s, "deployments.u42.internal.x"));
    assert_false(dlv(s, "deployments.u42.internal.x.y"));
    assert_false(dlv(s, "deployments.u43.build"));
    assert_false(dlv(s, "public.news"));
    assert_false(dlv(s, "deployments.u42.>")); /* a pattern is not a subject */

    /* publish */
    assert_true(pub(s, "ui.u42.click"));
    assert_true(pub(s, "ui.u42.a.b"));
    assert_false(pub(s, "ui.u42"));
    assert_false(pub(s, "ui.u43.click"));
    assert_false(pub(s, "ui.u42.>"));
    assert_false(pub(s, "ui.u42.*"));
    assert_false(pub(s, "deployments.u42.build"));

    perms_set_free(s);
    perms_table_free(t);
}

static void test_contract_operator(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    perms_set *s = set(t, "operator", "{\"sub\": \"ops1\"}");
    const char *pats[] = {">",
                          "*",
                          "a",
                          "deployments.>",
                          "deployments.u42.internal",
                          "deployments.*.internal.>",
                          "public.>"};
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++)
        assert_true(sub(s, pats[i]));
    assert_true(dlv(s, "deployments.u42.internal"));
    assert_true(dlv(s, "x"));
    assert_false(pub(s, "x"));
    assert_false(pub(s, "ui.ops1.x"));
    perms_set_free(s);
    perms_table_free(t);
}

/* A broad allowed subscription still never delivers denied subjects. */
static void test_deny_filters_broad_subscription(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    perms_set *s = set(t, "user", "{\"sub\": \"u42\"}");
    const char *subscription = "deployments.u42.>";
    assert_true(sub(s, subscription));
    const char *subjects[] = {"deployments.u42.a",          "deployments.u42.internal",
                              "deployments.u42.internal.x", "deployments.u42.internal.x.y",
                              "deployments.u42.a.internal", "deployments.u42.internals"};
    const bool want[] = {true, false, false, false, true, true};
    for (size_t i = 0; i < sizeof subjects / sizeof *subjects; i++) {
        bool reaches = subject_matches(S(subscription), S(subjects[i])) && dlv(s, subjects[i]);
        assert_int_equal(reaches, want[i]);
    }
    perms_set_free(s);
    perms_table_free(t);
}

/* perms_deliver_all: a subscription may skip per-event checks only when no
 * deny of the allowing role overlaps it; checked against perms_can_deliver
 * on sample subjects. */
static void test_deliver_all(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    perms_set *s = set(t, "user", "{\"sub\": \"u42\"}");
    assert_false(perms_deliver_all(s, S("deployments.u42.>")));     /* internal denied */
    assert_false(perms_deliver_all(s, S("deployments.u42.*")));     /* ...internal matches */
    assert_true(perms_deliver_all(s, S("deployments.u42.status"))); /* no deny overlaps */
    assert_true(perms_deliver_all(s, S("deployments.u42.a.>")));    /* *.internal needs 3 tokens */
    assert_false(perms_deliver_all(s, S("deployments.u43.x")));     /* not allowed at all */
    assert_true(perms_deliver_all(s, S("users.u42.>")));
    /* Whenever deliver_all holds, every sample subject under it is deliverable. */
    const char *pats[] = {"deployments.u42.status", "deployments.u42.a.>", "users.u42.>"};
    const char *subs[] = {"deployments.u42.status", "deployments.u42.a.b", "users.u42.x.y"};
    for (size_t i = 0; i < 3; i++)
        assert_true(dlv(s, subs[i]) && subject_matches(S(pats[i]), S(subs[i])));
    perms_set_free(s);
    perms_table_free(t);
}

/* NATS matching for denies: "x.*.internal.>" alone does not deny "x.u.internal". */
static void test_deny_nats_semantics(void **state)
{
    (void)state;
    perms_table *t = table("{\"r\": {\"subscribe\": {\"allow\": [\"d.>\"],"
                           " \"deny\": [\"d.*.internal.>\"]}}}");
    perms_set *s = set(t, "r", NULL);
    assert_true(dlv(s, "d.u42.internal"));
    assert_false(dlv(s, "d.u42.internal.x"));
    assert_true(sub(s, "d.u42.internal"));
    assert_false(sub(s, "d.u42.internal.>"));
    assert_false(sub(s, "d.*.internal.x"));
    assert_true(sub(s, "d.u42.>")); /* only partly denied */
    assert_true(sub(s, "d.>"));
    perms_set_free(s);
    perms_table_free(t);
}

/* ---- templates ----------------------------------------------------------- */

static const char *const tpl_roles =
    "{\"user\": {\"subscribe\": {\"allow\": [\"deployments.{sub}.>\", \"status.>\"]},"
    "            \"publish\": {\"allow\": [\"ui.{sub}.>\"]}}}";

/* Rights of a user whose sub claim is the JSON value `subv` (NULL: absent). */
static void check_user_sub(const char *subv, const char *want_token)
{
    perms_table *t = table(tpl_roles);
    char claims[512];
    if (subv)
        snprintf(claims, sizeof claims, "{\"sub\": %s, \"name\": \"x\"}", subv);
    else
        snprintf(claims, sizeof claims, "{\"name\": \"x\"}");
    perms_set *s = set(t, "user", claims);

    /* the literal part of the role always applies */
    assert_true(sub(s, "status.>"));
    assert_true(dlv(s, "status.x"));

    /* nothing broader than one principal's subtree, ever */
    const char *never[] = {">", "deployments.>", "deployments.*.>", "deployments.*.x", "ui.>"};
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        if (sub(s, never[i]))
            fail_msg("sub=%s: may subscribe %s", subv ? subv : "(absent)", never[i]);
    }
    assert_false(dlv(s, "deployments.other.x"));
    assert_false(pub(s, "ui.other.x"));

    if (!want_token) {
        assert_false(sub(s, "deployments.u42.>"));
        assert_false(dlv(s, "deployments.u42.x"));
        assert_false(pub(s, "ui.u42.x"));
    } else {
        char p[300];
        snprintf(p, sizeof p, "deployments.%s.>", want_token);
        assert_true(sub(s, p));
        snprintf(p, sizeof p, "deployments.%s.x", want_token);
        assert_true(dlv(s, p));
        snprintf(p, sizeof p, "ui.%s.click", want_token);
        assert_true(pub(s, p));
    }
    perms_set_free(s);
    perms_table_free(t);
}

static void test_template_escalation(void **state)
{
    (void)state;
    /* rejected values: the pattern is dropped */
    const char *bad[] = {"\"u42.>\"",   "\"*\"",           "\">\"",        "\"\"",
                         "\"a b\"",     "\"u42\\u00a0x\"", "\"u42\\tx\"",  "\"u42.x\"",
                         "\"u*\"",      "\"u>\"",          "\"\\u2003\"",  "\"\\u200b\"",
                         "\"\\ufeff\"", "\"\\u0085\"",     "\"a\\u3000\"", "1.5",
                         "0.0",         "{\"x\": 1}",      "[\"u42\"]",    "null",
                         NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        check_user_sub(bad[i], NULL);

    /* accepted scalars are used as text */
    check_user_sub("\"u42\"", "u42");
    check_user_sub("123", "123");
    check_user_sub("-7", "-7");
    check_user_sub("true", "true");
    check_user_sub("false", "false");
    check_user_sub("\"\\u00e9l\\u00e8ve\"", "\xc3\xa9l\xc3\xa8ve");
}

static void test_template_value_with_nul(void **state)
{
    (void)state;
    perms_table *t = table(tpl_roles);
    json_t *claims = json_object();
    json_object_set_new(claims, "sub", json_stringn("u4\0002", 4));
    const char *roles[] = {"user"};
    perms_set *s = perms_set_new(t, roles, 1, claims);
    json_decref(claims);
    assert_non_null(s);
    assert_false(dlv(s, "deployments.u4.x"));
    assert_true(dlv(s, "status.x"));
    perms_set_free(s);
    perms_table_free(t);
}

static void test_template_value_long(void **state)
{
    (void)state;
    perms_table *t = table("{\"r\": {\"subscribe\": {\"allow\": [\"a.{sub}.>\"]}}}");
    char v[300], claims[400], subj[400];

    memset(v, 'v', 256);
    v[256] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\": \"%s\"}", v);
    perms_set *s = set(t, "r", claims);
    snprintf(subj, sizeof subj, "a.%s.x", v);
    assert_true(dlv(s, subj));
    perms_set_free(s);

    v[256] = 'v';
    v[257] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\": \"%s\"}", v);
    s = set(t, "r", claims);
    snprintf(subj, sizeof subj, "a.%s.x", v);
    assert_false(dlv(s, subj));
    assert_false(sub(s, "a.>"));
    perms_set_free(s);
    perms_table_free(t);
}

/* An expansion over 1024 bytes is dropped; just under is kept. */
static void test_template_expansion_limit(void **state)
{
    (void)state;
    perms_table *t =
        table("{\"r\": {\"subscribe\": {\"allow\": [\"{sub}.{sub}.{sub}.{sub}.>\"]}}}");
    char v[300], claims[400], subj[4 * 300 + 8];
    for (size_t len = 254; len <= 255; len++) {
        memset(v, 'v', len);
        v[len] = '\0';
        snprintf(claims, sizeof claims, "{\"sub\": \"%s\"}", v);
        perms_set *s = set(t, "r", claims);
        /* pattern length 4 * len + 5: 1021 kept, 1025 dropped */
        snprintf(subj, sizeof subj, "%s.%s.%s.%s.>", v, v, v, v);
        bool fits = 4 * len + 5 <= 1024;
        assert_int_equal(sub(s, subj), fits);
        perms_set_free(s);
    }
    perms_table_free(t);
}

static void test_template_claim_paths(void **state)
{
    (void)state;
    perms_table *t = table("{\"member\": {\"subscribe\": {\"allow\": ["
                           "  \"orgs.{claim:org.id}.>\","
                           "  \"teams.{claim:org.team.name}.{sub}\","
                           "  \"tier.{claim:tier}.>\","
                           "  \"users.u-{sub}.>\","
                           "  \"pair.{sub}-{claim:org.id}.x\""
                           "]}}}");
    perms_set *s = set(t, "member",
                       "{\"sub\": \"u42\", \"tier\": 3,"
                       " \"org\": {\"id\": \"acme\", \"team\": {\"name\": \"red\"}},"
                       " \"org.id\": \"flat\"}");
    assert_true(sub(s, "orgs.acme.>"));
    assert_true(dlv(s, "orgs.acme.x"));
    assert_false(dlv(s, "orgs.flat.x")); /* a dotted NAME is a path, not a flat key */
    assert_true(dlv(s, "teams.red.u42"));
    assert_false(dlv(s, "teams.red.u43"));
    assert_true(dlv(s, "tier.3.x"));
    assert_true(sub(s, "users.u-u42.>")); /* part-token placeholder */
    assert_false(sub(s, "users.u42.>"));
    assert_false(sub(s, "users.u-u4.>"));
    assert_true(dlv(s, "pair.u42-acme.x"));
    perms_set_free(s);

    /* org is not an object, team missing, tier a real: those patterns only are dropped */
    s = set(t, "member", "{\"sub\": \"u42\", \"org\": \"acme\", \"tier\": 3.0}");
    assert_false(sub(s, "orgs.acme.>"));
    assert_false(dlv(s, "orgs.acme.x"));
    assert_false(dlv(s, "teams.red.u42"));
    assert_false(dlv(s, "tier.3.x"));
    assert_false(dlv(s, "pair.u42-acme.x"));
    assert_true(sub(s, "users.u-u42.>"));
    perms_set_free(s);

    /* nested value that would inject tokens */
    s = set(t, "member", "{\"sub\": \"u42\", \"org\": {\"id\": \"acme.>\"}}");
    assert_false(sub(s, "orgs.acme.>"));
    assert_false(sub(s, "orgs.>"));
    assert_false(dlv(s, "orgs.acme.x"));
    perms_set_free(s);

    /* claims that are not an object */
    s = set(t, "member", "[\"u42\"]");
    assert_false(sub(s, "users.u-u42.>"));
    perms_set_free(s);
    perms_table_free(t);
}

/* Anonymous sessions have no claims: every templated pattern is dropped. */
static void test_template_without_claims(void **state)
{
    (void)state;
    perms_table *t = table("{\"anonymous\": {\"subscribe\": {\"allow\": [\"public.>\","
                           " \"private.{sub}.>\"]}}}");
    perms_set *s = set(t, "anonymous", NULL);
    assert_true(sub(s, "public.>"));
    assert_false(sub(s, "private.>"));
    assert_false(dlv(s, "private.x.y"));
    perms_set_free(s);
    perms_table_free(t);
}

/* Contract §2: an unresolvable placeholder drops that pattern, deny included. */
static void test_template_in_deny(void **state)
{
    (void)state;
    perms_table *t = table("{\"r\": {\"subscribe\": {\"allow\": [\"a.>\"],"
                           " \"deny\": [\"a.{sub}.secret\"]}}}");
    perms_set *s = set(t, "r", "{\"sub\": \"u1\"}");
    assert_false(dlv(s, "a.u1.secret"));
    assert_true(dlv(s, "a.u2.secret"));
    assert_false(sub(s, "a.u1.secret"));
    perms_set_free(s);

    s = set(t, "r", "{\"sub\": \"*\"}");
    assert_true(dlv(s, "a.u1.x"));
    assert_true(dlv(s, "a.u1.secret")); /* the deny matches nothing */
    perms_set_free(s);
    perms_table_free(t);
}

/* ---- roles --------------------------------------------------------------- */

static const char *const union_roles =
    "{\"a\": {\"subscribe\": {\"allow\": [\"x.>\"], \"deny\": [\"x.secret\", \"x.secret.>\"]},"
    "         \"publish\": {\"allow\": [\"p.>\"], \"deny\": [\"p.no\"]}},"
    " \"b\": {\"subscribe\": {\"allow\": [\"x.secret\", \"y.*\"]},"
    "         \"publish\": {\"allow\": [\"p.no\"]}},"
    " \"c\": {\"subscribe\": {\"deny\": [\">\"]}, \"publish\": {\"deny\": [\">\"]}},"
    " \"d\": {}}";

static void test_union_of_roles(void **state)
{
    (void)state;
    perms_table *t = table(union_roles);

    perms_set *a = set(t, "a", NULL);
    assert_false(dlv(a, "x.secret"));
    assert_false(sub(a, "x.secret"));
    assert_false(pub(a, "p.no"));
    perms_set_free(a);

    /* b's allow is not cancelled by a's deny */
    perms_set *ab = set(t, "a,b", NULL);
    assert_true(dlv(ab, "x.secret"));
    assert_true(sub(ab, "x.secret"));
    assert_false(dlv(ab, "x.secret.deep")); /* neither role grants it */
    assert_true(pub(ab, "p.no"));
    assert_true(pub(ab, "p.yes"));
    /* a subscription is judged per role: x.> comes only from a, which denies part */
    assert_true(sub(ab, "x.>"));
    assert_false(sub(ab, "x.secret.>"));
    perms_set_free(ab);

    /* a role that only denies takes nothing away from the others */
    perms_set *ac = set(t, "c,a", NULL);
    assert_true(dlv(ac, "x.open"));
    assert_true(pub(ac, "p.yes"));
    perms_set_free(ac);

    /* property: adding any role to any set of roles never removes a right */
    const char *combos[] = {"a", "b", "c", "d", "a,b", "a,c", "b,c", "a,b,c", "a,b,c,d", "nope"};
    const char *extra[] = {"a", "b", "c", "d", "nope", "anonymous"};
    const char *pats[] = {">",   "x.>", "x.secret", "x.secret.>", "x.open",     "x.*", "y.z",
                          "y.*", "y.>", "p.no",     "p.yes",      "x.secret.q", "q",   "x.a.b"};
    for (size_t i = 0; i < sizeof combos / sizeof *combos; i++) {
        perms_set *base = set(t, combos[i], NULL);
        for (size_t e = 0; e < sizeof extra / sizeof *extra; e++) {
            char both[64];
            snprintf(both, sizeof both, "%s,%s", combos[i], extra[e]);
            perms_set *more = set(t, both, NULL);
            for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
                if (sub(base, pats[p]) && !sub(more, pats[p]))
                    fail_msg("adding %s to %s removed subscribe %s", extra[e], combos[i], pats[p]);
                if (dlv(base, pats[p]) && !dlv(more, pats[p]))
                    fail_msg("adding %s to %s removed deliver %s", extra[e], combos[i], pats[p]);
                if (pub(base, pats[p]) && !pub(more, pats[p]))
                    fail_msg("adding %s to %s removed publish %s", extra[e], combos[i], pats[p]);
            }
            perms_set_free(more);
        }
        perms_set_free(base);
    }
    perms_table_free(t);
}

static void test_unknown_and_no_roles(void **state)
{
    (void)state;
    perms_table *t = table(contract_roles);
    assert_true(perms_table_has_role(t, "user"));
    assert_true(perms_table_has_role(t, "anonymous"));
    assert_false(perms_table_has_role(t, "admin"));
    assert_false(perms_table_has_role(t, ""));
    assert_false(perms_table_has_role(t, NULL));

    perms_set *s = set(t, "admin", "{\"sub\": \"u42\"}");
    assert_false(sub(s, ">"));
    assert_false(sub(s, "public.>"));
    assert_false(dlv(s, "public.x"));
    assert_false(pub(s, "ui.u42.x"));
    perms_set_free(s);

    /* unknown names next to known ones grant nothing extra; duplicates are harmless */
    s = set(t, "admin,user,user", "{\"sub\": \"u42\"}");
    assert_true(sub(s, "deployments.u42.>"));
    assert_false(sub(s, ">"));
    assert_false(dlv(s, "deployments.u42.internal"));
    perms_set_free(s);

    /* no roles: no permission */
    s = perms_set_new(t, NULL, 0, NULL);
    assert_non_null(s);
    assert_false(sub(s, "public.>"));
    assert_false(dlv(s, "public.x"));
    perms_set_free(s);

    /* NULL entries are skipped */
    const char *roles[] = {NULL, "anonymous"};
    s = perms_set_new(t, roles, 2, NULL);
    assert_non_null(s);
    assert_true(sub(s, "public.>"));
    perms_set_free(s);

    /* NULL set refuses everything; freeing NULL is fine */
    assert_false(sub(NULL, "public.>"));
    assert_false(dlv(NULL, "public.x"));
    assert_false(pub(NULL, "public.x"));
    perms_set_free(NULL);
    perms_table_free(NULL);
    perms_table_free(t);
}

static void test_default_table(void **state)
{
    (void)state;
    reports r = {0};
    perms_table *t = NULL;
    perms_table_new(&t, NULL, collect, &r);
    assert_non_null(t);
    assert_int_equal(r.n, 0);
    assert_true(perms_table_has_role(t, "anonymous"));
    assert_false(perms_table_has_role(t, "user"));
    perms_set *s = set(t, "anonymous", NULL);
    assert_true(sub(s, "public.>"));
    assert_true(dlv(s, "public.x"));
    assert_false(sub(s, ">"));
    assert_false(dlv(s, "private.x"));
    assert_false(pub(s, "public.x"));
    perms_set_free(s);
    s = set(t, "user", "{\"sub\": \"u1\"}");
    assert_false(sub(s, "public.>")); /* anonymous is not implied */
    perms_set_free(s);
    perms_table_free(t);

    /* an empty roles object grants nothing to anyone */
    t = table("{}");
    s = set(t, "anonymous", NULL);
    assert_false(sub(s, "public.>"));
    perms_set_free(s);
    perms_table_free(t);

    /* no report callback */
    json_t *j = parse("{\"x\": 1}");
    perms_table *none = NULL;
    assert_int_equal(perms_table_new(&none, j, NULL, NULL), HR_ERR_INVALID);
    assert_null(none);
    json_decref(j);
    assert_int_equal(perms_table_new(&t, NULL, NULL, NULL), HR_OK);
    assert_non_null(t);
    perms_table_free(t);
}

/* ---- configuration problems ---------------------------------------------- */

static void test_config_problems_all_reported(void **state)
{
    (void)state;
    reports r;
    table_bad(
        "{"
        "\"user\": {"
        "  \"subscribe\": {\"allow\": [\"ok.>\", 7, \"a.>.b\", \"x.{hdr:x}\"],"
        "                \"deny\": \"nope\", \"alow\": []},"
        "  \"publish\": {\"allow\": [\"u.{sub}.>\", \"u.{claim:}\", \"foo*\"]},"
        "  \"subcribe\": {}"
        "},"
        "\"Bad Name\": {\"subscribe\": {\"allow\": [\"a\"]}},"
        "\"-x\": {},"
        "\"ok\": {\"subscribe\": [], \"publish\": 3},"
        "\"str\": \"user\","
        "\"t\": {\"subscribe\": {\"allow\": [\"a.{sub\", \"a.sub}\", \"{sub}*\", \"\","
        "                        \"a.{claim:a..b}\", \"{claim:x}.>.y\", \"{sub}>\", \"a.{}\","
        "                        \"a. b\", \"a.{SUB}\", \"a.{claim: x}\", \"{claim:org.id}.ok\"]}}"
        "}",
        &r);
    const char *want[] = {
        "user.subscribe.allow[1]: must be a string",
        "user.subscribe.allow[2]: invalid pattern",
        "user.subscribe.allow[3]: unknown placeholder {hdr:x}",
        "user.subscribe.deny: must be an array of strings",
        "user.subscribe.alow: unknown key",
        "user.publish.allow[1]: invalid claim name {claim:}",
        "user.publish.allow[2]: invalid pattern",
        "user.subcribe: unknown key",
        "Bad Name: invalid role name",
        "-x: invalid role name",
        "ok.subscribe: must be an object",
        "ok.publish: must be an object",
        "str: must be an object",
        "t.subscribe.allow[0]: unterminated placeholder",
        "t.subscribe.allow[1]: unmatched '}'",
        "t.subscribe.allow[2]: invalid pattern",
        "t.subscribe.allow[3]: invalid pattern",
        "t.subscribe.allow[4]: invalid claim name {claim:a..b}",
        "t.subscribe.allow[5]: invalid pattern",
        "t.subscribe.allow[6]: invalid pattern",
        "t.subscribe.allow[7]: unknown placeholder {}",
        "t.subscribe.allow[8]: invalid pattern",
        "t.subscribe.allow[9]: unknown placeholder {SUB}",
        "t.subscribe.allow[10]: invalid claim name {claim: x}",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        if (!has_report(&r, want[i])) {
            dump_reports(&r);
            fail_msg("missing report \"%s\"", want[i]);
        }
    }
    if (r.n != sizeof want / sizeof *want) {
        dump_reports(&r);
        fail_msg("%zu reports, want %zu", r.n, sizeof want / sizeof *want);
    }
}

static void test_config_problem_single(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *report;
    } cases[] = {
        {"[]", ": must be an object"},
        {"\"roles\"", ": must be an object"},
        {"{\"user\": null}", "user: must be an object"},
        {"{\"user\": {\"publish\": {\"deny\": [null]}}}", "user.publish.deny[0]: must be a string"},
        {"{\"user\": {\"publish\": {\"deny\": {}}}}",
         "user.publish.deny: must be an array of strings"},
        {"{\"user\": {\"extra\": 1}}", "user.extra: unknown key"},
        {"{\"user\": {\"publish\": {\"allow\": [], \"x\": 1}}}", "user.publish.x: unknown key"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.{hdr:x}\"]}}}",
         "r.subscribe.allow[0]: unknown placeholder {hdr:x}"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.{claim:{sub}}\"]}}}",
         "r.subscribe.allow[0]: unknown placeholder {claim:{sub}"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.*x\"]}}}",
         "r.subscribe.allow[0]: invalid pattern"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a..b\"]}}}",
         "r.subscribe.allow[0]: invalid pattern"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.\"]}}}",
         "r.subscribe.allow[0]: invalid pattern"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.\\u00a0\"]}}}",
         NULL}, /* NBSP is a valid subject byte */
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.\\u007f\"]}}}",
         "r.subscribe.allow[0]: invalid pattern"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.{claim:.x}\"]}}}",
         "r.subscribe.allow[0]: invalid claim name {claim:.x}"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.{claim:x.}\"]}}}",
         "r.subscribe.allow[0]: invalid claim name {claim:x.}"},
        {"{\"r\": {\"subscribe\": {\"allow\": [\"a.{sub}.{sub\"]}}}",
         "r.subscribe.allow[0]: unterminated placeholder"},
        {"{\"r_1-x\": {}}", NULL},
        {"{\"0\": {}}", NULL},
        {"{\"_r\": {}}", "_r: invalid role name"},
        {"{\"R\": {}}", "R: invalid role name"},
        {"{\"r.x\": {}}", "r.x: invalid role name"},
        {"{\"\": {}}", ": invalid role name"},
        {"{\"a234567890123456789012345678901234567890123456789012345678901234\": {}}", NULL},
        {"{\"a2345678901234567890123456789012345678901234567890123456789012345\": {}}",
         "a2345678901234567890123456789012345678901234567890123456789012345: invalid role name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        reports r = {0};
        json_t *j = parse(cases[i].json);
        perms_table *t = NULL;
        perms_table_new(&t, j, collect, &r);
        json_decref(j);
        if (cases[i].report == NULL) {
            if (!t || r.n) {
                dump_reports(&r);
                fail_msg("case %zu rejected: %s", i, cases[i].json);
            }
            perms_table_free(t);
            continue;
        }
        assert_null(t);
        if (r.n != 1 || strcmp(r.lines[0], cases[i].report) != 0) {
            dump_reports(&r);
            fail_msg("case %zu: want exactly \"%s\"", i, cases[i].report);
        }
    }
}

/* Whatever the table and claims, expanded patterns stay valid and no
 * placeholder value widens a pattern: spot-check with many claim values. */
static void test_no_injection_sweep(void **state)
{
    (void)state;
    perms_table *t = table("{\"r\": {\"subscribe\": {\"allow\": [\"a.{sub}\", \"b.x{sub}y.c\","
                           " \"c.{claim:k}.>\"]}, \"publish\": {\"allow\": [\"p.{sub}\"]}}}");
    const char *values[] = {"*",   ">",   "x.y",     "x.*",     "x.>",     ".",   "..",     " ",
                            "\\t", "\\n", "\\u00a0", "\\u2028", "\\u3000", "x y", "\\u0001"};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char claims[128];
        snprintf(claims, sizeof claims, "{\"sub\": \"%s\", \"k\": \"%s\"}", values[i], values[i]);
        perms_set *s = set(t, "r", claims);
        const char *probes[] = {">",     "a.>",     "a.*", "a.q",   "a.x.y", "b.>",
                                "b.*.c", "b.xqy.c", "c.>", "c.*.>", "c.q.z", "p.q"};
        for (size_t p = 0; p < sizeof probes / sizeof *probes; p++) {
            if (sub(s, probes[p]))
                fail_msg("value %s lets subscribe %s", values[i], probes[p]);
        }
        assert_false(dlv(s, "a.q"));
        assert_false(dlv(s, "a.x.y"));
        assert_false(pub(s, "p.q"));
        perms_set_free(s);
    }
    perms_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_anonymous),
        cmocka_unit_test(test_contract_user),
        cmocka_unit_test(test_contract_operator),
        cmocka_unit_test(test_deny_filters_broad_subscription),
        cmocka_unit_test(test_deny_nats_semantics),
        cmocka_unit_test(test_deliver_all),
        cmocka_unit_test(test_template_escalation),
        cmocka_unit_test(test_template_value_with_nul),
        cmocka_unit_test(test_template_value_long),
        cmocka_unit_test(test_template_expansion_limit),
        cmocka_unit_test(test_template_claim_paths),
        cmocka_unit_test(test_template_without_claims),
        cmocka_unit_test(test_template_in_deny),
        cmocka_unit_test(test_union_of_roles),
        cmocka_unit_test(test_unknown_and_no_roles),
        cmocka_unit_test(test_default_table),
        cmocka_unit_test(test_config_problems_all_reported),
        cmocka_unit_test(test_config_problem_single),
        cmocka_unit_test(test_no_injection_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
