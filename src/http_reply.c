/* http_reply: status titles, problem+json, and queueing MHD responses. */
#include "herald/http_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *http_reply_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

char *http_reply_problem_text(int status, const char *slug, const char *detail)
{
    char type[128];
    snprintf(type, sizeof type, "urn:herald:problem:%s", slug);
    json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", http_reply_title(status),
                          "status", status, "detail", detail);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}

int http_reply_problem_raw(char *out, size_t cap, int status, const char *slug, const char *detail,
                           const char *extra_header, const char *extra_value)
{
    char *body = http_reply_problem_text(status, slug, detail);
    if (!body)
        return -1;
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n%s%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, http_reply_title(status), extra_header ? extra_header : "",
                     extra_header ? ": " : "", extra_header ? extra_value : "",
                     extra_header ? "\r\n" : "", strlen(body), body);
    free(body);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

enum MHD_Result http_reply_queue(struct MHD_Connection *c, int status, struct MHD_Response *resp,
                                 const char *ctype, const char *extra_header,
                                 const char *extra_value, bool close_conn)
{
    if (!resp)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (extra_header)
        MHD_add_response_header(resp, extra_header, extra_value);
    if (close_conn)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result buffer_with(struct MHD_Connection *c, int status, const char *ctype,
                                   void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                                   const char *extra_header, const char *extra_value,
                                   bool close_conn)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp && mode == MHD_RESPMEM_MUST_FREE)
        free(body);
    return http_reply_queue(c, status, resp, ctype, extra_header, extra_value, close_conn);
}

enum MHD_Result http_reply_buffer(struct MHD_Connection *c, int status, const char *ctype,
                                  void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    return buffer_with(c, status, ctype, body, len, mode, NULL, NULL, false);
}

enum MHD_Result http_reply_problem(struct MHD_Connection *c, int status, const char *slug,
                                   const char *detail, const char *extra_header,
                                   const char *extra_value, bool close_conn)
{
    char *text = http_reply_problem_text(status, slug, detail);
    if (!text)
        return MHD_NO;
    return buffer_with(c, status, "application/problem+json", text, strlen(text),
                       MHD_RESPMEM_MUST_FREE, extra_header, extra_value, close_conn);
}

enum MHD_Result http_reply_json(struct MHD_Connection *c, int status, const json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!text)
        return MHD_NO;
    return buffer_with(c, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE,
                       NULL, NULL, false);
}
