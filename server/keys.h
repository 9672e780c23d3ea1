/*
 * `claimd keys`: API key administration as the owner role. A key is 32
 * random bytes from getrandom(2), shown once as "ck_" and 64 hex digits; only
 * its SHA-256 is stored.
 */
#ifndef CLAIMD_SERVER_KEYS_H
#define CLAIMD_SERVER_KEYS_H

/** The keys command; returns the process exit code. */
int keys_main(int argc, char **argv);

#endif
