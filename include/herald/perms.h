/* perms: the subject-permission table (contract §2).
 * Owns roles with subscribe/publish allow/deny lists, the {sub} and
 * {claim:NAME} templates, and the decisions built on them: may a principal
 * subscribe to a pattern, receive a subject, publish to a subject.
 * Pure: no I/O, no globals. A perms_table is immutable once built and may be
 * read from any thread; a perms_set belongs to one session (or request). */
#ifndef HERALD_PERMS_H
#define HERALD_PERMS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "herald/status.h"

/* Compiled "permissions.roles". Created by perms_table_new, freed by its
 * creator with perms_table_free (after every perms_set built from it). */
typedef struct perms_table perms_table;

/* One principal's rules with its templates expanded. Created by
 * perms_set_new, freed by its owner (a session) with perms_set_free. */
typedef struct perms_set perms_set;

/* Called once per configuration problem; `path` is relative to the object
 * given to perms_table_new ("user.subscribe.allow[1]"; "" for that object
 * itself). Both strings are valid only during the call. Messages are short:
 * "unknown key", "invalid role name", "must be an object", "must be an array
 * of strings", "must be a string", "invalid pattern", "unknown placeholder
 * {hdr:x}", "invalid claim name {claim:a..b}", "unterminated placeholder",
 * "unmatched '}'", "out of memory". */
typedef void (*perms_report_fn)(void *ctx, const char *path, const char *msg);

/* Build the table from a JSON object {name: {subscribe:{allow,deny},
 * publish:{allow,deny}}}. NULL `roles` gives the contract default
 * ({"anonymous":{"subscribe":{"allow":["public.>"]}}}). Every problem is
 * reported (unknown keys, bad role names, invalid patterns, unknown
 * placeholders) through `report` (may be NULL): HR_ERR_INVALID if there
 * was any, HR_ERR_NOMEM on allocation failure (*out is then NULL; the
 * problems are this constructor's err, lifecycle.h). The table copies what
 * it needs: `roles` stays the caller's.
 *
 * Templates: "{sub}" and "{claim:NAME}" (NAME a dotted path into nested
 * objects, "{claim:org.id}"; "{sub}" is "{claim:sub}"). A placeholder may be a
 * whole token or part of one ("users.u-{sub}.>"). A pattern is accepted when
 * it is a valid pattern with every placeholder replaced by one plain
 * character; a placeholder value never holds '.', '*', '>' or whitespace, so
 * it cannot add a token or a wildcard. '{' always opens a placeholder and a
 * stray '}' is a problem, so patterns cannot contain literal braces. */
hr_status perms_table_new(perms_table **out, const json_t *roles, perms_report_fn report,
                          void *ctx);
void perms_table_free(perms_table *t);

bool perms_table_has_role(const perms_table *t, const char *name);

/* Expand the rules of `roles` (unknown names grant nothing; no roles, no
 * permission) for a principal whose token claims are the object `claims`
 * (may be NULL: templates then match nothing; anonymous sessions pass
 * {"anonymous"} and NULL). Each pattern is expanded once here: a placeholder
 * takes a string, integer or boolean (true/false) claim as text; a missing,
 * null, real, object or array value, or text that is not
 * subject_placeholder_value_valid, or an expansion over the subject limits,
 * drops that one pattern (it matches nothing; the rest of the role applies --
 * note this holds for deny patterns too, as contract §2 says).
 * Nothing is kept from `roles` or `claims` after the call. The caller owns
 * the result. Returns NULL only on allocation failure. */
perms_set *perms_set_new(const perms_table *t, const char *const *roles, size_t nroles,
                         const json_t *claims);
void perms_set_free(perms_set *s);

/* The checks below never allocate and are safe to call concurrently on
 * one set. An invalid pattern/subject, or a NULL set, is refused. */

/* Subscribe to a valid pattern: some role has an allow A containing it and
 * no deny of that same role containing it wholly. */
bool perms_can_subscribe(const perms_set *s, const char *pattern, size_t len);

/* Is every subject matching `pattern` deliverable? True when one role has
 * an allow containing it and no deny of that role overlapping it; lets a
 * subscription skip the per-event check (perms_can_deliver). */
bool perms_deliver_all(const perms_set *s, const char *pattern, size_t len);

/* Deliver / publish a literal subject: some role allows it and does not deny it. */
bool perms_can_deliver(const perms_set *s, const char *subject, size_t len);
bool perms_can_publish(const perms_set *s, const char *subject, size_t len);

#endif
