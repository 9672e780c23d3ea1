/*
 * `claimd serve`: reads the settings, loads the policy versions, binds one
 * SO_REUSEPORT socket per event loop, runs the workers, and drains them all on
 * SIGTERM or SIGINT.
 */
#ifndef CLAIMD_SERVER_SERVE_H
#define CLAIMD_SERVER_SERVE_H

/** The serve command; returns the process exit code. */
int serve_main(int argc, char **argv);

/** The check-config command: the effective settings and their sources. */
int serve_check_config(int argc, char **argv);

#endif
