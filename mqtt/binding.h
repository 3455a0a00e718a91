/*
 * Client IDs bound to certificates (mqtt/binding.c): a bound client ID is
 * its certificate's alone, whether or not the device is connected or has a
 * session. Each shard keeps the bindings of the client IDs homed on it
 * (route_home), so the check runs on the home shard with no lock. Every
 * function runs on the thread of the shard it is given.
 */
#ifndef VOUCH_MQTT_BINDING_H
#define VOUCH_MQTT_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/broker-t.h"

struct reg_notice;

/* Shard start: the bindings of the client IDs homed here, from the
 * registry, before the shard serves a connection. */
void bind_shard_start(struct bshard *bs);
void bind_shard_stop(struct bshard *bs);
/* A registrar notice of a device certificate change (RX_CERT_STATUS): its
 * binding as it is after the change. */
void bind_on_notice(struct bshard *bs, const struct reg_notice *n);
/* Whether client ID cid (homed on this shard) is bound to certificates
 * none of which is mc's: true for a connection without a certificate. */
bool bind_refuses(struct bshard *bs, const struct mconn *mc, const uint8_t *cid, size_t len);

#endif
