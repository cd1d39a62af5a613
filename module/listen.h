/*
 * listen.h - picomdm-fcgi's listening socket (listen.c).
 */
#ifndef PICOMDM_LISTEN_H
#define PICOMDM_LISTEN_H

struct config;

/*
 * The socket to accept on: cfg->socket made (a unix path, or HOST:PORT),
 * or fd 0 when cfg->socket is NULL and fd 0 is a listening socket.
 * Returns the descriptor, or -1 after logging why (nothing left behind).
 */
int  listen_open(const struct config *cfg);

/* Remove the unix socket file made by listen_open, if it is still ours. */
void listen_cleanup(void);

#endif
