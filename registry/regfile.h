/*
 * The registry file: CA and device-certificate records in one append-only,
 * memory-mapped file (<data dir>/registry.vch), with lock-free lookups.
 *
 * Threads. ONE writer thread (the registrar) calls reg_open/reg_close and
 * every function without the _mt suffix. Functions ending in _mt may be
 * called from any thread, concurrently with the writer and with each other,
 * without locks, between reg_open() returning and reg_close() being called.
 * The registry itself is never freed under a reader: stop the readers
 * before reg_close().
 *
 * Durability. A write call returns only after its change is on disk
 * (fdatasync), unless the writer has opened a batch with reg_begin(); then
 * reg_commit() makes all of the batch's changes durable with one sync. A
 * batch is a durability group, not a transaction: after a crash, any prefix
 * of an uncommitted batch may survive, and each change on its own is a
 * consistent state.
 *
 * Visibility. _mt readers see exactly the durable changes: a change becomes
 * visible to them when it is on disk, never before (so no shard acts on a
 * change that a crash could take back). The writer's own calls see its
 * changes at once, committed or not.
 *
 * Errors. Write calls return 0 (or a small positive count, where said) on
 * success and -errno on failure, with nothing written on failure. After a
 * failed sync the registry refuses every later write with -EIO (the state
 * of the unsynced pages is unknown); readers keep the durable state.
 */
#ifndef VOUCH_REGISTRY_REGFILE_H
#define VOUCH_REGISTRY_REGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/regfile-t.h"

#define REG_FILE_NAME "registry.vch"

/*
 * Open <dir>/registry.vch, creating dir (0700) and the file if missing.
 * Writer thread. The file is verified record by record (checksums,
 * sequence, and every record against the state it applies to), and the
 * indexes are built. A write that a crash interrupted (never acknowledged)
 * is discarded; damage anywhere else refuses the open.
 * err (errlen bytes, may be NULL/0) receives a human message: why the open
 * failed, or, on success, a notice such as a discarded torn tail ("" if
 * nothing to say).
 * Returns 0 and *out, or:
 *   -EBADMSG      the file is damaged (the message names the offset);
 *   -EPROTONOSUPPORT  a registry of another format version;
 *   -EWOULDBLOCK  another process has the registry open;
 *   -ENOMEM, -EFBIG, or the -errno of a failed system call.
 */
int reg_open(struct registry **out, const char *dir, char *err, size_t errlen);

/* Like reg_open() for an explicit file path (the directory must exist).
 * The file is created when it does not exist; an existing file shorter than
 * a header is damage (-EBADMSG), never silently re-initialised. */
int reg_open_file(struct registry **out, const char *path, char *err,
		  size_t errlen);

/*
 * Close: commit an open batch, mark a clean close in the file, trim the
 * file to its log, unmap and free. Writer thread, with every reader
 * stopped. Returns 0 or the -errno of the final sync (r is freed anyway).
 * NULL is a no-op.
 */
int reg_close(struct registry *r);

/* ---- writer thread only ------------------------------------------------ */

/*
 * Group the following changes under one sync: reg_begin() opens a batch
 * (nesting counts), reg_commit() closes one level and, at the outermost,
 * syncs and publishes the batch to readers. Writer thread.
 * reg_commit returns 0, -EINVAL without a matching reg_begin, or -EIO.
 */
int reg_begin(struct registry *r);
int reg_commit(struct registry *r);

/*
 * Register a CA. Writer thread. Returns 0, -EEXIST (registered), -EINVAL (a
 * bad status/auto_status/empty serial or DER), -ENAMETOOLONG (a field over
 * its bound), -EMSGSIZE (DER over REG_DER_MAX), -EIO, -ENOSPC...
 */
int reg_ca_add(struct registry *r, const struct reg_ca_in *in,
	       const struct reg_by *by);

/* Set a CA ACTIVE or INACTIVE. Writer thread. 0 (also when unchanged),
 * -ENOENT, -EINVAL for another status. */
int reg_ca_set_status(struct registry *r, const uint8_t id[REG_ID_LEN],
		      enum reg_status s, const struct reg_by *by);

/* Allow or refuse automatic registration of the CA's device certificates,
 * and choose their initial status (ACTIVE or PENDING_ACTIVATION; 0 keeps
 * the current one). Writer thread. 0, -ENOENT, -EINVAL. */
int reg_ca_set_auto(struct registry *r, const uint8_t id[REG_ID_LEN],
		    bool auto_register, enum reg_status initial,
		    const struct reg_by *by);

/* Delete a CA. Writer thread. 0, -ENOENT, -EBUSY if ACTIVE (deactivate
 * first). Its device certificates stay; they cannot connect or auto-register
 * until the CA is registered again. */
int reg_ca_delete(struct registry *r, const uint8_t id[REG_ID_LEN],
		  const struct reg_by *by);

/*
 * Register a device certificate. Writer thread.
 * The issuing CA must be registered (-ENOENT otherwise). For how == REG_AUTO
 * the CA must also be ACTIVE and allow automatic registration (-EPERM), and
 * status 0 takes the CA's auto_status.
 * Revocation is final: if the certificate ID or its (issuer, serial) is on
 * record as revoked (revoked then deleted, or reg_revoke_serial), an AUTO
 * registration is refused with -EKEYREVOKED, and a MANUAL one is stored
 * with status REVOKED and returns 1.
 * Returns 0 (stored as asked), 1 (stored as REVOKED), -EEXIST (the ID is
 * registered, or another registered certificate of this CA has the serial),
 * -EINVAL (bad status/how, empty serial or DER, or an ID re-registered with
 * a different issuer or serial), -ENAMETOOLONG, -EMSGSIZE, -EIO...
 */
int reg_dev_add(struct registry *r, const struct reg_dev_in *in,
		const struct reg_by *by);

/*
 * Apply a status action (DESIGN.md "Certificate states"): s = ACTIVE
 * (activate), INACTIVE (deactivate) or REVOKED (revoke). Writer thread.
 * Returns 0 (also when the status already is s), -ENOENT, -EPERM (REVOKED
 * is final), -EINVAL (s = PENDING_ACTIVATION or not a status).
 */
int reg_dev_set_status(struct registry *r, const uint8_t id[REG_ID_LEN],
		       enum reg_status s, const struct reg_by *by);

/* Bind a client ID (len bytes, no NUL inside) to a device certificate; len 0
 * unbinds. Writer thread. 0, -ENOENT, -ENAMETOOLONG (> REG_CLIENT_MAX),
 * -EINVAL (a NUL inside). */
int reg_dev_bind(struct registry *r, const uint8_t id[REG_ID_LEN],
		 const char *client_id, size_t len, const struct reg_by *by);

/* Delete a device certificate. Writer thread. 0, -ENOENT, -EBUSY if ACTIVE
 * (deactivate first). A REVOKED one leaves its revocation on record (by ID
 * and by issuer + serial); any other may be registered again. */
int reg_dev_delete(struct registry *r, const uint8_t id[REG_ID_LEN],
		   const struct reg_by *by);

/*
 * Record that the CA's certificate with this serial is revoked (a CRL
 * entry), whether or not it has been seen: a registered one becomes
 * REVOKED, and one registered later is refused or stored REVOKED (see
 * reg_dev_add). Writer thread. Returns 1 when a revocation was recorded, 0
 * when it already was, -EINVAL, -ENAMETOOLONG, -EIO...
 */
int reg_revoke_serial(struct registry *r, const uint8_t ca_id[REG_ID_LEN],
		      const uint8_t *serial, size_t len,
		      const struct reg_by *by);

/* ---- any thread, lock-free ---------------------------------------------- */

/* Snapshot of a registered device certificate. 0 or -ENOENT. Any thread. */
int reg_dev_get_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		   struct reg_device *out);

/* The registered device certificate with this issuer and serial. 0 or
 * -ENOENT. Any thread. */
int reg_dev_by_serial_mt(const struct registry *r,
			 const uint8_t ca_id[REG_ID_LEN], const uint8_t *serial,
			 size_t len, struct reg_device *out);

/* Snapshot of a registered CA. 0 or -ENOENT. Any thread. */
int reg_ca_get_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		  struct reg_ca *out);

/* Whether (issuer, serial) is revoked: a REVOKED certificate, one deleted
 * after revocation, or a reg_revoke_serial entry. Any thread. */
bool reg_serial_revoked_mt(const struct registry *r,
			   const uint8_t ca_id[REG_ID_LEN],
			   const uint8_t *serial, size_t len);

/* Whether the certificate ID is revoked: registered as REVOKED, deleted
 * after revocation, or its serial is revoked. Any thread. */
bool reg_dev_revoked_mt(const struct registry *r, const uint8_t id[REG_ID_LEN]);

/*
 * Call fn for each change of a certificate ID, oldest first, across
 * deletions and re-registrations. fn returns 0 to go on, anything else to
 * stop (returned). Returns 0, fn's value, -ENOENT (never seen), -ENOMEM.
 * Any thread.
 */
int reg_dev_history_mt(const struct registry *r, const uint8_t id[REG_ID_LEN],
		       int (*fn)(void *ctx, const struct reg_event *ev),
		       void *ctx);

/*
 * Call fn for every registered device certificate (every CA), in no
 * particular order. fn returns 0 to go on, else stops (returned). Any
 * thread, but O(table size): meant for the admin API, not for shards.
 * Changes made meanwhile may or may not be seen.
 */
int reg_dev_foreach_mt(const struct registry *r,
		       int (*fn)(void *ctx, const struct reg_device *d),
		       void *ctx);
int reg_ca_foreach_mt(const struct registry *r,
		      int (*fn)(void *ctx, const struct reg_ca *ca),
		      void *ctx);

/* Sequence number of the last durable change: grows on every change, so a
 * reader can tell that something changed. Any thread. */
uint64_t reg_generation_mt(const struct registry *r);

/* Counters. Exact on the writer thread (they include an uncommitted batch);
 * from other threads each number is current but they are not one snapshot.
 * Any thread. */
void reg_counts_mt(const struct registry *r, struct reg_counts *out);

/* "ACTIVE", "INACTIVE", "PENDING_ACTIVATION", "REVOKED" or "?". */
const char *reg_status_name(enum reg_status s);

/* Parse a status name (as above, case-insensitive). 0 or -EINVAL. */
int reg_status_parse(const char *s, enum reg_status *out);

#endif
