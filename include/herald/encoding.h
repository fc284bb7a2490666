/* encoding: hex, base64 and base64url text encodings of byte strings.
 * Owns the codecs every module shares (webhook signatures, CloudEvents
 * data_base64, WebSocket data_b64, frames, JWT segments).
 * Does not own: digests or MACs (crypto.h), JSON (jansson).
 * Pure: no I/O, no globals, no allocation; any thread may call it. */
#ifndef HERALD_ENCODING_H
#define HERALD_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

/* ---- hex ------------------------------------------------------------------ */

/* Lowercase hex of in[0..len) into out, NUL-terminated; out holds 2*len+1. */
void enc_hex_encode(const unsigned char *in, size_t len, char *out);

/* Decode exactly len hex characters (either case) into out. False on odd
 * length, a non-hex character, or len/2 > outcap. *outlen = len/2. */
bool enc_hex_decode(const char *in, size_t len, unsigned char *out, size_t outcap, size_t *outlen);

/* ---- base64 (RFC 4648 §4, standard alphabet) --------------------------------- */

/* Length of the padded standard base64 of n bytes (without NUL). */
size_t enc_base64_encoded_len(size_t n);

/* Padded standard base64 of in into out, NUL-terminated; out holds
 * enc_base64_encoded_len(len)+1. Returns the length written (without NUL). */
size_t enc_base64_encode(const unsigned char *in, size_t len, char *out);

/* Upper bound on the decoded size of len base64 or base64url characters. */
size_t enc_base64_decoded_max(size_t len);

/* Decode standard base64 (A-Z a-z 0-9 + /), padded or unpadded; no
 * whitespace, no base64url, '=' only as 1-2 trailing pad characters
 * completing a 4-character group. *outlen is the real byte count. False if
 * malformed or the result exceeds outcap. Empty input decodes to 0 bytes.
 * Unused low bits of the last character are ignored, as most decoders do. */
bool enc_base64_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                       size_t *outlen);

/* ---- base64url (RFC 4648 §5, as JWS uses it) --------------------------------- */

/* Is c in the base64url alphabet (A-Z a-z 0-9 - _)? */
bool enc_base64url_char(unsigned char c);

/* Unpadded base64url of in into out, NUL-terminated; out holds
 * enc_base64url_encoded_len(len)+1. Returns the length written. */
size_t enc_base64url_encoded_len(size_t n);
size_t enc_base64url_encode(const unsigned char *in, size_t len, char *out);

/* Strict unpadded base64url (RFC 7515 §2): the alphabet only (no '='), no
 * length of 1 mod 4, and the unused low bits of the last character zero
 * (so every byte string has exactly one encoding). False if malformed or
 * the result exceeds outcap. */
bool enc_base64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap,
                          size_t *outlen);

#endif
