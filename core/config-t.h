/*
 * The broker's configuration: one immutable snapshot, filled from flags and
 * an optional config file before any thread starts, then shared read-only
 * (const) by every thread.
 */
#ifndef VOUCH_CORE_CONFIG_T_H
#define VOUCH_CORE_CONFIG_T_H

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <sys/socket.h>

#define VOUCH_MAX_LISTENERS 16
#define VOUCH_MAX_SHARDS 64

struct vouch_listener {
	char text[80];                 /* as given, "ADDR:PORT" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;
};

struct vouch_config {
	struct vouch_listener listeners[VOUCH_MAX_LISTENERS];
	int n_listeners;
	int shards;                    /* 0 until resolved: online CPUs */
	uint32_t max_connections;      /* broker-wide */
	uint32_t max_packet_size;      /* bytes, whole packet */
	uint32_t receive_maximum;      /* server's Receive Maximum */
	uint32_t max_queued_messages;  /* per session */
	uint32_t max_shard_backlog;    /* cross-shard messages held before input pauses */
	uint32_t max_keepalive;        /* seconds; server keep alive cap */
	uint32_t connect_timeout;      /* seconds */
	uint32_t sys_interval;         /* seconds between $SYS updates */
	uint32_t topic_alias_maximum;  /* aliases a client may use towards us */
	int log_level;
	bool io_compat;                /* force the Linux 5.10 fallbacks */
	char data_dir[PATH_MAX];
	/* identity */
	char cert_file[PATH_MAX];      /* server certificate (PEM) */
	char key_file[PATH_MAX];       /* server key (PEM) */
	bool require_certificate;      /* TLS clients must present one */
	bool allow_clientid_mismatch;
	uint32_t signup_rate;          /* auto-registrations per second */
	uint32_t signup_burst;
	char admin_listen[80];         /* "" = no admin API */
	char admin_token_file[PATH_MAX];
	uint32_t expiry_warning_days;
	char crl_dir[PATH_MAX];        /* --crl-dir: "" = none (registry/crl.c) */
	char issuing_ca[PATH_MAX];     /* provisioning by CSR (registry/provision.c) */
	char issuing_key[PATH_MAX];
	/* authorization (docs/policies.md) */
	bool plain_role_admin;         /* --plain-role admin */
	uint32_t deny_subscribe_code;  /* SUBACK code of a refused v5 subscription */
};

#endif
