/*
 * libFuzzer harness for the MQTT codec (mqtt/codec.c). The input is decoded
 * before CONNECT (version 0), as 3.1.1 and as 5.0, each with no size limit
 * and two small ones; every packet that decodes is encoded again, decoded
 * again and compared field by field (tests/fuzz/codec_check.h), topic lists
 * and user properties are walked. Any mismatch aborts. The UTF-8 and topic
 * validators are also run on the raw input to exercise their fast paths.
 */
#include <stddef.h>
#include <stdint.h>

#include "mqtt/codec.h"
#include "tests/fuzz/codec_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cc_roundtrip(data, size);

	/* Validators on arbitrary bytes: only must not over-read or crash;
	 * a valid topic name is also a valid filter. */
	int u = mqtt_utf8_valid(data, size);
	int n = mqtt_topic_name_valid(data, size);
	int f = mqtt_topic_filter_valid(data, size);

	if (n && !f && !(size >= 7 && memcmp(data, "$share/", 7) == 0))
		abort();
	(void)u;

	/* A stream of packets: decode one after another as a connection
	 * would, so that views at packet boundaries are exercised. */
	size_t off = 0;
	uint8_t ver = 0;

	while (off < size) {
		struct mqtt_packet p;
		ssize_t r = mqtt_decode(data + off, size - off, ver, 0, &p);

		if (r <= 0)
			break;
		if (p.type == MQTT_CONNECT && ver == 0)
			ver = p.u.connect.version;
		off += (size_t)r;
	}
	return 0;
}
