/* encoding: hex, base64 and base64url. One table-driven decoder serves both
 * base64 alphabets. Pure. */
#include "herald/encoding.h"

#include <stdint.h>

static const char HEX_DIGITS[] = "0123456789abcdef";
static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void enc_hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = HEX_DIGITS[in[i] >> 4];
        out[2 * i + 1] = HEX_DIGITS[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

bool enc_hex_decode(const char *in, size_t len, unsigned char *out, size_t outcap, size_t *outlen)
{
    if (len % 2 != 0 || len / 2 > outcap)
        return false;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value((unsigned char)in[i]);
        int lo = hex_value((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *outlen = len / 2;
    return true;
}

/* The 6-bit value of ch in the alphabet whose characters 62 and 63 are c62
 * and c63, or -1. */
static int b64_value(unsigned char ch, char c62, char c63)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == (unsigned char)c62)
        return 62;
    if (ch == (unsigned char)c63)
        return 63;
    return -1;
}

/* Encode with `alphabet`, padding to a 4-character group when pad. */
static size_t b64_encode(const char *alphabet, bool pad, const unsigned char *in, size_t len,
                         char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = alphabet[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Decode data_len alphabet characters (no padding). strict: the unused low
 * bits of the last character must be zero. */
static bool b64_decode(const char *in, size_t data_len, char c62, char c63, bool strict,
                       unsigned char *out, size_t outcap, size_t *outlen)
{
    if (data_len % 4 == 1)
        return false; /* a lone 6-bit character cannot encode a byte */
    size_t n = data_len / 4 * 3 + (data_len % 4 == 0 ? 0 : data_len % 4 - 1);
    if (n > outcap)
        return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < data_len; i++) {
        int v = b64_value((unsigned char)in[i], c62, c63);
        if (v < 0)
            return false; /* includes '=' before the trailing padding */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (strict && acc != 0)
        return false;
    *outlen = o;
    return true;
}

size_t enc_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t enc_base64_encode(const unsigned char *in, size_t len, char *out)
{
    return b64_encode(B64_STD, true, in, len, out);
}

size_t enc_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

/* Own decoder rather than EVP_DecodeBlock: that one returns the padded length,
 * refuses unpadded input and skips surrounding whitespace (STACK-NOTES §8). */
bool enc_base64_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                       size_t *outlen)
{
    size_t pad = 0;
    while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
        pad++;
    if (pad > 0 && len % 4 != 0)
        return false; /* padding must complete a 4-character group */
    return b64_decode(in, len - pad, '+', '/', false, out, outcap, outlen);
}

bool enc_base64url_char(unsigned char c)
{
    return b64_value(c, '-', '_') >= 0;
}

size_t enc_base64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t enc_base64url_encode(const unsigned char *in, size_t len, char *out)
{
    return b64_encode(B64_URL, false, in, len, out);
}

bool enc_base64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                          size_t *outlen)
{
    return b64_decode(in, len, '-', '_', true, out, outcap, outlen);
}
