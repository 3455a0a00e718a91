/*
 * Types of the registry file: the CA and device-certificate records the
 * broker keeps in one memory-mapped, append-only file, as readers see them
 * and as the registrar hands them in.
 *
 * A certificate ID is the SHA-256 of the certificate's DER (32 bytes; shown
 * as lowercase hex elsewhere). An issuer is named by its CA's certificate
 * ID. Text fields are UTF-8, NUL-terminated, and never truncated: a longer
 * input is refused with -ENAMETOOLONG.
 *
 * Snapshots (struct reg_device, struct reg_ca, struct reg_event) point into
 * the mapping for their variable parts. Records are never rewritten or
 * unmapped while the registry is open, so those pointers stay valid until
 * reg_close(), on any thread.
 */
#ifndef VOUCH_REGISTRY_REGFILE_T_H
#define VOUCH_REGISTRY_REGFILE_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REG_ID_LEN      32      /* SHA-256 */
#define REG_SERIAL_MAX  32      /* RFC 5280 4.1.2.2 says 20; room for the DER sign byte and sloppy CAs */
#define REG_NAME_MAX    64      /* CN, O, OU: X.520 upper bounds (ub-common-name etc.) */
#define REG_CLIENT_MAX  256     /* bound client ID */
#define REG_ACTOR_MAX   128     /* "auto", "admin:<token-name>", "crl:<ca>" ... */
#define REG_DER_MAX     16384   /* a certificate's DER */

/* Status of a CA (ACTIVE, INACTIVE) or of a device certificate (all four). */
enum reg_status {
	REG_ACTIVE = 1,
	REG_INACTIVE = 2,
	REG_PENDING_ACTIVATION = 3,
	REG_REVOKED = 4,
};
#define REG_STATUS_COUNT 5      /* array size for per-status counters (index 0 unused) */

/* How a device certificate was registered. */
enum reg_how {
	REG_AUTO = 1,           /* just in time, on its first connection */
	REG_MANUAL = 2,         /* by an administrator */
};

/* Who makes a change, and when. Every write call takes one; both are kept in
 * the record so that a certificate's history can be shown. */
struct reg_by {
	const char *actor;      /* NUL-terminated, <= REG_ACTOR_MAX bytes; NULL = "" */
	int64_t now;            /* unix seconds of the change; 0 = CLOCK_REALTIME */
};

/* A device certificate to register (reg_dev_add). Fields come from the
 * certificate parser; id must be SHA-256(der) (not re-checked here). */
struct reg_dev_in {
	uint8_t id[REG_ID_LEN];
	uint8_t issuer[REG_ID_LEN];     /* the issuing CA's certificate ID */
	const uint8_t *serial;          /* 1..REG_SERIAL_MAX bytes */
	size_t serial_len;
	const char *cn, *o, *ou;        /* NULL = "" */
	int64_t not_before, not_after;  /* unix seconds */
	enum reg_status status;         /* 0 = default: CA's auto_status (AUTO), ACTIVE (MANUAL) */
	enum reg_how how;
	const char *client_id;          /* bound client ID; NULL or "" = none */
	const uint8_t *der;             /* 1..REG_DER_MAX bytes */
	size_t der_len;
};

/* A CA certificate to register (reg_ca_add). */
struct reg_ca_in {
	uint8_t id[REG_ID_LEN];
	const uint8_t *serial;
	size_t serial_len;
	const char *cn, *o, *ou;
	int64_t not_before, not_after;
	enum reg_status status;         /* ACTIVE or INACTIVE; 0 = ACTIVE */
	bool auto_register;
	enum reg_status auto_status;    /* ACTIVE or PENDING_ACTIVATION; 0 = ACTIVE */
	const uint8_t *der;
	size_t der_len;
};

/* One device certificate as of one moment (a consistent snapshot). */
struct reg_device {
	uint8_t id[REG_ID_LEN];
	uint8_t issuer[REG_ID_LEN];
	const uint8_t *serial;
	size_t serial_len;
	const char *cn, *o, *ou;        /* never NULL; "" when absent */
	size_t cn_len, o_len, ou_len;
	int64_t not_before, not_after;
	enum reg_status status;
	enum reg_how how;
	const char *client_id;          /* "" when unbound */
	size_t client_id_len;
	int64_t created, updated;       /* unix seconds */
	const char *created_by;         /* actor of the registration */
	const char *updated_by;         /* actor of the latest change */
	uint64_t version;               /* sequence number of the latest change */
	const uint8_t *der;
	size_t der_len;
};

/* One CA as of one moment. */
struct reg_ca {
	uint8_t id[REG_ID_LEN];
	const uint8_t *serial;
	size_t serial_len;
	const char *cn, *o, *ou;
	size_t cn_len, o_len, ou_len;
	int64_t not_before, not_after;
	enum reg_status status;         /* ACTIVE or INACTIVE */
	bool auto_register;
	enum reg_status auto_status;    /* ACTIVE or PENDING_ACTIVATION */
	int64_t created, updated;
	const char *created_by, *updated_by;
	uint64_t version;
	const uint8_t *der;
	size_t der_len;
};

/* One entry of a device certificate's history (reg_dev_history_mt). */
enum reg_event_kind {
	REG_EV_ADDED = 1,       /* registered; status, client_id as registered */
	REG_EV_STATUS = 2,      /* status changed to .status */
	REG_EV_BOUND = 3,       /* client ID bound (client_id) or unbound ("") */
	REG_EV_DELETED = 4,     /* record removed; .status is the status it had */
};

struct reg_event {
	enum reg_event_kind kind;
	uint64_t seq;           /* the change's sequence number in the file */
	int64_t time;
	const char *actor;
	enum reg_status status; /* status after the change (before, for DELETED) */
	const char *client_id;  /* bound client ID after the change, "" if none */
	enum reg_how how;       /* ADDED only */
};

/* Counters, kept by the writer (reg_counts_mt). */
struct reg_counts {
	uint64_t devices;                       /* registered (not deleted) */
	uint64_t dev_status[REG_STATUS_COUNT];  /* per enum reg_status */
	uint64_t cas;
	uint64_t ca_status[REG_STATUS_COUNT];
	uint64_t records;                       /* records in the file */
	uint64_t file_bytes;                    /* bytes of log in the file */
};

struct registry;

#endif
