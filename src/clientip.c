/* clientip: trusted-proxy CIDRs and X-Forwarded-For. Pure: no I/O, no globals. */
#include "herald/clientip.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One address (no prefix) into family + bytes; IPv4-mapped IPv6 becomes
 * IPv4. Tolerates "[v6]", "[v6]:port" and "v4:port" as X-Forwarded-For
 * entries sometimes carry them. */
static bool parse_addr(const char *s, size_t len, int *family, unsigned char addr[16])
{
    char buf[64];
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *a = buf;
    if (*a == '[') {
        char *rb = strchr(a, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            return false;
        *rb = '\0';
        a++;
    } else {
        char *colon = strchr(a, ':');
        if (colon && !strchr(colon + 1, ':'))
            *colon = '\0'; /* "1.2.3.4:5678" */
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, a, addr) == 1) {
        *family = 4;
        return true;
    }
    if (inet_pton(AF_INET6, a, addr) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, 12) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = 4;
    } else {
        *family = 6;
    }
    return true;
}

bool cip_parse_cidr(const char *s, cip_cidr *out)
{
    memset(out, 0, sizeof *out);
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    /* A configured range is plain notation: no brackets, ports or spaces,
     * and no IPv4-mapped IPv6 form (its prefix would count IPv6 bits). */
    if (alen == 0 || strcspn(s, "[] \t") != strlen(s) ||
        !parse_addr(s, alen, &out->family, out->addr) || (out->family == 4 && memchr(s, ':', alen)))
        return false;
    int max = out->family == 4 ? 32 : 128;
    if (!slash) {
        out->prefix = max;
        return true;
    }
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3)
        return false;
    int v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > max)
        return false;
    out->prefix = v;
    return true;
}

static bool in_range(const cip_cidr *r, int family, const unsigned char addr[16])
{
    if (r->family != family)
        return false;
    int full = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(r->addr, addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (r->addr[full] & mask) == (addr[full] & mask);
}

static bool trusted_bytes(const cip_cidr *ranges, size_t n, int family, const unsigned char a[16])
{
    for (size_t i = 0; i < n; i++)
        if (in_range(&ranges[i], family, a))
            return true;
    return false;
}

bool cip_trusted(const cip_cidr *ranges, size_t n, const char *ip)
{
    int fam;
    unsigned char a[16];
    return ip && parse_addr(ip, strlen(ip), &fam, a) && trusted_bytes(ranges, n, fam, a);
}

static void to_text(int family, const unsigned char a[16], char *out, size_t cap)
{
    if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, a, out, (socklen_t)cap) && cap)
        out[0] = '\0';
}

void cip_client(const cip_cidr *ranges, size_t n, const char *peer, const char *xff, char *out,
                size_t cap)
{
    int fam;
    unsigned char a[16];
    if (!peer || !parse_addr(peer, strlen(peer), &fam, a)) {
        snprintf(out, cap, "%s", peer ? peer : "");
        return;
    }
    to_text(fam, a, out, cap);
    if (!n || !xff || !trusted_bytes(ranges, n, fam, a))
        return;
    /* Right to left: out holds the last address read, a trusted hop. */
    size_t end = strlen(xff);
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        int ef;
        unsigned char ea[16];
        bool blank = true;
        for (size_t i = start; i < end; i++)
            blank &= xff[i] == ' ' || xff[i] == '\t';
        if (!blank) {
            if (!parse_addr(xff + start, end - start, &ef, ea))
                return;
            to_text(ef, ea, out, cap);
            if (!trusted_bytes(ranges, n, ef, ea))
                return;
        }
        if (start == 0)
            return; /* every entry trusted: the left-most one */
        end = start - 1;
    }
}
