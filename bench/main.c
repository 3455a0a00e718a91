/*
 * bench/main.c - vouch-bench's entry point: the command line (a mode,
 * then flags), the checks that turn a bad flag into one line on stderr and
 * exit status 2, the certificate pool, and the dispatch to the mode.
 *
 *	vouch-bench pubsub  [flags]   publishers -> broker -> subscribers
 *	vouch-bench connect [flags]   connection flood
 *	vouch-bench signup  [flags]   flood of never-seen certificates
 *	vouch-bench hold    [flags]   many connections held open, pinging
 *
 * The signal flag is the one piece of global state: a handler has no other
 * way to reach the main thread's waits.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "bench/bench.h"
#include "mqtt/codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

/* See bench/bench.h. */
bool bench_interrupted(void)
{
	return interrupted != 0;
}

static const char usage_main[] =
	"usage: vouch-bench <mode> [options]\n"
	"\n"
	"MQTT load generator (vouch's own codec, epoll, wolfSSL).\n"
	"\n"
	"modes:\n"
	"  pubsub     publishers -> broker -> subscribers: rates, loss, end-to-end latency\n"
	"  connect    connection flood: connects/s, CONNACK codes, connect latency,\n"
	"             TLS session resumption (--resume)\n"
	"  signup     flood of never-seen device certificates: registrations/s and the\n"
	"             most in any second (the broker's --signup-rate at work)\n"
	"  hold       open N connections and keep them open, pinging: how many stay\n"
	"             and answer, the broker's memory per connection\n"
	"\n"
	"'vouch-bench <mode> --help' lists a mode's options.\n";

static const char usage_common[] =
	"connection:\n"
	"  --host H               broker address (default 127.0.0.1)\n"
	"  --port P               broker port (default 1883, 8883 with TLS)\n"
	"  --version 4|5          MQTT 3.1.1 or 5.0 (default 4)\n"
	"  --keepalive S          keep-alive in CONNECT, seconds (default 60)\n"
	"  --client-id-prefix P   client IDs P<role><n> (role: pub, sub, c); default\n"
	"                         vbench-PID-<role><n>,\n"
	"                         or empty with TLS (the broker uses the certificate's)\n"
	"  --timeout S            for TCP + TLS + CONNACK (+ SUBACK) (default 10)\n"
	"  --concurrency N        connection attempts in progress per thread (default 100)\n"
	"  --threads N            event loops, one thread each (default 1)\n"
	"  --json                 one JSON object on stdout instead of the text report\n"
	"  --quiet                no progress line on stderr (one a second otherwise)\n"
	"TLS (any of these turns TLS on):\n"
	"  --tls                  connect over TLS\n"
	"  --cafile F             verify the broker's certificate against F (default: no check)\n"
	"  --cert-dir DIR         client certificates: every NAME.crt with a NAME.key in DIR,\n"
	"                         used round-robin, one per connection (vouchctl pki device)\n"
	"  --cert F --key F       one client certificate for every connection\n"
	"  --tls-version 1.2|1.3  force a version (default: negotiate, at least 1.2)\n"
	"  -h, --help             this text\n";

static const char usage_pubsub[] =
	"usage: vouch-bench pubsub [options]\n"
	"\n"
	"Subscribers connect and subscribe first; then publishers send timestamped\n"
	"payloads for --duration seconds. Subscriber s listens on topic s % T,\n"
	"publisher p publishes on topic p % T. Reports messages/s in and out,\n"
	"bytes/s, loss per subscription, duplicates, and latency percentiles.\n"
	"\n"
	"  --publishers N         (default 1)\n"
	"  --subscribers M        (default 1)\n"
	"  --topics T             (default 1: everybody hears everybody)\n"
	"  --qos 0|1|2            publish and subscribe QoS (default 0)\n"
	"  --size BYTES           payload size, at least 8 (default 256)\n"
	"  --rate R               messages/s per publisher; 0 = unpaced (default 0)\n"
	"  --inflight N           unpaced QoS 1/2 window per publisher, capped by the\n"
	"                         broker's Receive Maximum (default 32); QoS 0 is held\n"
	"                         back only by the socket (64 KiB queued per publisher)\n"
	"  --duration S           seconds of publishing (default 10)\n"
	"  --drain S              at most this long for late deliveries after (default 5)\n"
	"  --shared GROUP         subscribe to $share/GROUP/<topic>\n"
	"  --topic-prefix P       topics are P/<n> (default vbench/PID)\n"
	"\n";

#define FLOOD_OPTS \
	"  --source-addrs A[-B]   bind each connection to the next address of A..B\n" \
	"                         (IPv4, round-robin): past ~28k connections to one port\n" \
	"  --procs K              K worker processes, each with its share of the\n" \
	"                         connections and of the certificates, one report\n" \
	"                         (the open-files limit is per process) (default 1)\n"

static const char usage_connect[] =
	"usage: vouch-bench connect [options]\n"
	"\n"
	"Opens --connections connections (TCP, TLS, CONNECT/CONNACK). Reports\n"
	"connects/s, the CONNACK reason codes, failures by cause, and latency\n"
	"percentiles (socket to CONNACK; TCP and TLS handshake apart).\n"
	"\n"
	"  --connections N        (default 1000)\n"
	"  --rate R               connections/s over all threads; 0 = as fast as\n"
	"                         --concurrency allows (default 0)\n"
	"  --hold S               keep them open S seconds after the last one\n"
	"                         settled (default 0: DISCONNECT after CONNACK)\n"
	"  --broker-pid PID       report the broker's VmRSS before and after (with\n"
	"                         --hold: memory per connection)\n"
	"  --resume               TLS session resumption: the first connection with each\n"
	"                         certificate (per thread) does a full handshake and keeps\n"
	"                         its session, later ones with that certificate resume it;\n"
	"                         reports full vs resumed and their latencies apart\n"
	"  --ping-interval S      with --hold: as in hold (default: --keepalive / 2)\n"
	FLOOD_OPTS
	"\n";

static const char usage_signup[] =
	"usage: vouch-bench signup --cert-dir DIR [options]\n"
	"\n"
	"Connects once with every certificate of --cert-dir (never seen by the broker,\n"
	"made with vouchctl pki device under a CA registered with automatic\n"
	"registration), in order. The broker registers a new certificate on its first\n"
	"connection, at most --signup-rate a second; over the limit it answers CONNACK\n"
	"0x9F (MQTT 5) or 0x03 (MQTT 3.1.1). Reports attempted, registered (CONNACK 0),\n"
	"refused over the limit, other failures by cause, registrations a second over\n"
	"the run, and the most registrations in any one-second window (CONNACK times).\n"
	"\n"
	"  --connections N        the first N certificates (default: all of them)\n"
	"  --rate R               attempts/s over all threads; 0 = as fast as\n"
	"                         --concurrency allows (default 0)\n"
	"  --broker-pid PID       report the broker's VmRSS before and after\n"
	FLOOD_OPTS
	"\n";

static const char usage_hold[] =
	"usage: vouch-bench hold [options]\n"
	"\n"
	"Opens --connections connections (as connect), keeps them open --duration\n"
	"seconds after the last one settled, and every --ping-interval seconds sends one\n"
	"PINGREQ on every open connection (a round). Reports connections open at the\n"
	"end, how many answered the last round within --timeout, and with --broker-pid\n"
	"the broker's VmRSS before the first connection and at the end: (after - before)\n"
	"/ open connections is the memory one connection costs. Same as connect --hold.\n"
	"\n"
	"  --connections N        (default 1000)\n"
	"  --rate R               connections/s over all threads; 0 = as fast as\n"
	"                         --concurrency allows (default 0)\n"
	"  --duration S           seconds to hold them (default 10)\n"
	"  --ping-interval S      seconds between rounds (default: --keepalive / 2, at most\n"
	"                         --keepalive)\n"
	"  --broker-pid PID       the broker's VmRSS before and at the end\n"
	"  --resume               TLS session resumption, as in connect\n"
	FLOOD_OPTS
	"\n";

enum {
	O_HOST = 256, O_PORT, O_THREADS, O_JSON, O_VERSION, O_KEEPALIVE, O_TIMEOUT,
	O_CONCURRENCY, O_CID, O_TLS, O_CAFILE, O_CERTDIR, O_CERT, O_KEY, O_TLSVER,
	O_PUBS, O_SUBS, O_TOPICS, O_QOS, O_SIZE, O_RATE, O_DURATION, O_DRAIN,
	O_INFLIGHT, O_SHARED, O_TPREFIX, O_CONNS, O_HOLD, O_PID, O_RESUME,
	O_PINGIV, O_SRC, O_PROCS, O_QUIET,
};

#define M_PS (1 << BENCH_PUBSUB)
#define M_CF (1 << BENCH_CONNECT)
#define M_SU (1 << BENCH_SIGNUP)
#define M_HO (1 << BENCH_HOLD)
#define M_FLOOD (M_CF | M_SU | M_HO)
#define M_ALL (M_PS | M_FLOOD)

static const struct option longopts[] = {
	{ "host", required_argument, NULL, O_HOST },
	{ "port", required_argument, NULL, O_PORT },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "json", no_argument, NULL, O_JSON },
	{ "version", required_argument, NULL, O_VERSION },
	{ "keepalive", required_argument, NULL, O_KEEPALIVE },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "concurrency", required_argument, NULL, O_CONCURRENCY },
	{ "client-id-prefix", required_argument, NULL, O_CID },
	{ "tls", no_argument, NULL, O_TLS },
	{ "cafile", required_argument, NULL, O_CAFILE },
	{ "cert-dir", required_argument, NULL, O_CERTDIR },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "tls-version", required_argument, NULL, O_TLSVER },
	{ "publishers", required_argument, NULL, O_PUBS },
	{ "subscribers", required_argument, NULL, O_SUBS },
	{ "topics", required_argument, NULL, O_TOPICS },
	{ "qos", required_argument, NULL, O_QOS },
	{ "size", required_argument, NULL, O_SIZE },
	{ "rate", required_argument, NULL, O_RATE },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "inflight", required_argument, NULL, O_INFLIGHT },
	{ "shared", required_argument, NULL, O_SHARED },
	{ "topic-prefix", required_argument, NULL, O_TPREFIX },
	{ "connections", required_argument, NULL, O_CONNS },
	{ "hold", required_argument, NULL, O_HOLD },
	{ "broker-pid", required_argument, NULL, O_PID },
	{ "resume", no_argument, NULL, O_RESUME },
	{ "ping-interval", required_argument, NULL, O_PINGIV },
	{ "source-addrs", required_argument, NULL, O_SRC },
	{ "procs", required_argument, NULL, O_PROCS },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Which modes take each option (index: val - O_HOST). */
static const int opt_modes[] = {
	[O_HOST - O_HOST] = M_ALL, [O_PORT - O_HOST] = M_ALL,
	[O_THREADS - O_HOST] = M_ALL, [O_JSON - O_HOST] = M_ALL,
	[O_VERSION - O_HOST] = M_ALL, [O_KEEPALIVE - O_HOST] = M_ALL,
	[O_TIMEOUT - O_HOST] = M_ALL, [O_CONCURRENCY - O_HOST] = M_ALL,
	[O_CID - O_HOST] = M_ALL, [O_TLS - O_HOST] = M_ALL,
	[O_CAFILE - O_HOST] = M_ALL, [O_CERTDIR - O_HOST] = M_ALL,
	[O_CERT - O_HOST] = M_ALL, [O_KEY - O_HOST] = M_ALL,
	[O_TLSVER - O_HOST] = M_ALL, [O_PUBS - O_HOST] = M_PS,
	[O_SUBS - O_HOST] = M_PS, [O_TOPICS - O_HOST] = M_PS,
	[O_QOS - O_HOST] = M_PS, [O_SIZE - O_HOST] = M_PS,
	[O_RATE - O_HOST] = M_ALL, [O_DURATION - O_HOST] = M_PS | M_HO,
	[O_DRAIN - O_HOST] = M_PS, [O_INFLIGHT - O_HOST] = M_PS,
	[O_SHARED - O_HOST] = M_PS, [O_TPREFIX - O_HOST] = M_PS,
	[O_CONNS - O_HOST] = M_FLOOD, [O_HOLD - O_HOST] = M_CF,
	[O_PID - O_HOST] = M_FLOOD, [O_RESUME - O_HOST] = M_CF | M_HO,
	[O_PINGIV - O_HOST] = M_CF | M_HO, [O_SRC - O_HOST] = M_FLOOD,
	[O_PROCS - O_HOST] = M_FLOOD, [O_QUIET - O_HOST] = M_ALL,
};

static const char *const mode_names[] = {
	[BENCH_PUBSUB] = "pubsub",
	[BENCH_CONNECT] = "connect",
	[BENCH_SIGNUP] = "signup",
	[BENCH_HOLD] = "hold",
};

static const char *const mode_usage[] = {
	[BENCH_PUBSUB] = usage_pubsub,
	[BENCH_CONNECT] = usage_connect,
	[BENCH_SIGNUP] = usage_signup,
	[BENCH_HOLD] = usage_hold,
};

/* See bench/bench.h. */
double bench_ping_interval(const struct bench_opts *o)
{
	if (o->ping_interval > 0)
		return o->ping_interval;
	return o->keepalive ? o->keepalive / 2.0 : 30.0;
}

static int usage_error(const char *mode, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const char *mode, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vouch-bench%s%s: ", mode ? " " : "", mode ? mode : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	return BENCH_EXIT_USAGE;
}

static int parse_long(const char *mode, const char *flag, const char *s,
		      long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return usage_error(mode, "--%s: expected an integer from %ld to %ld, got '%s'",
				   flag, min, max, s);
	*out = v;
	return 0;
}

static int parse_double(const char *mode, const char *flag, const char *s,
			double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		return usage_error(mode, "--%s: expected a number from %g to %g, got '%s'",
				   flag, min, max, s);
	*out = v;
	return 0;
}

static bool has_any(const char *s, const char *set)
{
	return strpbrk(s, set) != NULL;
}

/* --source-addrs A or A-B (IPv4, A <= B, at most 65536 addresses). */
static int parse_sources(const char *m, const char *arg, struct bench_opts *o)
{
	char a[64], *dash;
	struct in_addr lo, hi;

	if (strlen(arg) >= sizeof a)
		return usage_error(m, "--source-addrs: expected A or A-B (IPv4), got '%s'", arg);
	strcpy(a, arg);
	dash = strchr(a, '-');
	if (dash)
		*dash = 0;
	if (inet_pton(AF_INET, a, &lo) != 1 || inet_pton(AF_INET, dash ? dash + 1 : a, &hi) != 1)
		return usage_error(m, "--source-addrs: expected A or A-B (IPv4), got '%s'", arg);
	uint32_t l = ntohl(lo.s_addr), h = ntohl(hi.s_addr);
	if (l > h || h - l >= 65536)
		return usage_error(m, "--source-addrs: '%s' is not a range of at most 65536 "
				   "addresses, low to high", arg);
	free(o->src);
	o->nsrc = h - l + 1;
	o->src = calloc(o->nsrc, sizeof *o->src);
	if (!o->src) {
		o->nsrc = 0;
		return usage_error(m, "--source-addrs: out of memory");
	}
	for (uint32_t i = 0; i < o->nsrc; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&o->src[i];
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(l + i);
	}
	return 0;
}

/* Parse argv (after the mode) into o. Returns 0, -1 for --help (printed),
 * or BENCH_EXIT_USAGE with the reason printed. */
static int parse(int argc, char **argv, struct bench_opts *o)
{
	const char *m = mode_names[o->mode];
	long l;
	int rc;

	opterr = 0;
	optind = 1;
	for (;;) {
		int prev = optind;
		int c = getopt_long(argc, argv, ":h", longopts, NULL);
		if (c == -1)
			break;
		if (c == 'h') {
			fputs(mode_usage[o->mode], stdout);
			fputs(usage_common, stdout);
			return -1;
		}
		if (c == '?')
			return usage_error(m, "unknown option '%s'", argv[prev]);
		if (c == ':')
			return usage_error(m, "'%s' needs a value", argv[prev]);
		if (!(opt_modes[c - O_HOST] & (1 << o->mode)))
			return usage_error(m, "'%s' is not an option of this mode", argv[prev]);
		rc = 0;
		switch (c) {
		case O_HOST:
			o->host = optarg;
			break;
		case O_PORT:
			if (!(rc = parse_long(m, "port", optarg, 1, 65535, &l)))
				o->port = (uint16_t)l;
			break;
		case O_THREADS:
			if (!(rc = parse_long(m, "threads", optarg, 1, 1024, &l)))
				o->threads = (int)l;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_VERSION:
			if (!strcmp(optarg, "4") || !strcmp(optarg, "3.1.1"))
				o->version = MQTT_V311;
			else if (!strcmp(optarg, "5") || !strcmp(optarg, "5.0"))
				o->version = MQTT_V5;
			else
				rc = usage_error(m, "--version: expected 4 or 5, got '%s'", optarg);
			break;
		case O_KEEPALIVE:
			if (!(rc = parse_long(m, "keepalive", optarg, 0, 65535, &l)))
				o->keepalive = (uint16_t)l;
			break;
		case O_TIMEOUT:
			rc = parse_double(m, "timeout", optarg, 0.01, 3600, &o->timeout);
			break;
		case O_CONCURRENCY:
			if (!(rc = parse_long(m, "concurrency", optarg, 1, 1000000, &l)))
				o->concurrency = (int)l;
			break;
		case O_CID:
			if (strlen(optarg) > 100)
				rc = usage_error(m, "--client-id-prefix: at most 100 bytes");
			o->client_id_prefix = optarg;
			break;
		case O_TLS:
			o->tls = true;
			break;
		case O_CAFILE:
			o->cafile = optarg;
			o->tls = true;
			break;
		case O_CERTDIR:
			o->cert_dir = optarg;
			o->tls = true;
			break;
		case O_CERT:
			o->cert = optarg;
			o->tls = true;
			break;
		case O_KEY:
			o->key = optarg;
			o->tls = true;
			break;
		case O_TLSVER:
			if (!strcmp(optarg, "1.2"))
				o->tls_version = 12;
			else if (!strcmp(optarg, "1.3"))
				o->tls_version = 13;
			else
				rc = usage_error(m, "--tls-version: expected 1.2 or 1.3, got '%s'", optarg);
			o->tls = true;
			break;
		case O_PUBS:
			if (!(rc = parse_long(m, "publishers", optarg, 1, 1000000, &l)))
				o->publishers = (int)l;
			break;
		case O_SUBS:
			if (!(rc = parse_long(m, "subscribers", optarg, 1, 1000000, &l)))
				o->subscribers = (int)l;
			break;
		case O_TOPICS:
			if (!(rc = parse_long(m, "topics", optarg, 1, 1000000, &l)))
				o->topics = (int)l;
			break;
		case O_QOS:
			if (!(rc = parse_long(m, "qos", optarg, 0, 2, &l)))
				o->qos = (uint8_t)l;
			break;
		case O_SIZE:
			if (!(rc = parse_long(m, "size", optarg, 8, 16 << 20, &l)))
				o->size = (uint32_t)l;
			break;
		case O_RATE:
			if (o->mode == BENCH_PUBSUB)
				rc = parse_double(m, "rate", optarg, 0, 1e7, &o->rate);
			else
				rc = parse_double(m, "rate", optarg, 0, 1e7, &o->conn_rate);
			break;
		case O_DURATION:
			rc = parse_double(m, "duration", optarg, 0.1, 86400, &o->duration);
			break;
		case O_DRAIN:
			rc = parse_double(m, "drain", optarg, 0, 3600, &o->drain);
			break;
		case O_INFLIGHT:
			if (!(rc = parse_long(m, "inflight", optarg, 1, 65535, &l)))
				o->inflight = (int)l;
			break;
		case O_SHARED:
			if (!*optarg || has_any(optarg, "/+#"))
				rc = usage_error(m, "--shared: a group name without '/', '+' or '#', got '%s'", optarg);
			o->shared = optarg;
			break;
		case O_TPREFIX:
			if (!*optarg || has_any(optarg, "+#") || strlen(optarg) > 200)
				rc = usage_error(m, "--topic-prefix: a topic name without wildcards, got '%s'", optarg);
			o->topic_prefix = optarg;
			break;
		case O_CONNS:
			if (!(rc = parse_long(m, "connections", optarg, 1, 10000000, &l)))
				o->connections = (int)l;
			break;
		case O_HOLD:
			rc = parse_double(m, "hold", optarg, 0, 86400, &o->hold);
			break;
		case O_PID:
			if (!(rc = parse_long(m, "broker-pid", optarg, 1, INT_MAX, &l)))
				o->broker_pid = (int)l;
			break;
		case O_RESUME:
			o->resume = true;
			break;
		case O_PINGIV:
			rc = parse_double(m, "ping-interval", optarg, 0.01, 86400, &o->ping_interval);
			break;
		case O_SRC:
			rc = parse_sources(m, optarg, o);
			break;
		case O_PROCS:
			if (!(rc = parse_long(m, "procs", optarg, 1, 256, &l)))
				o->procs = (int)l;
			break;
		case O_QUIET:
			o->quiet = true;
			break;
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error(m, "unexpected argument '%s'", argv[optind]);
	if (!!o->cert != !!o->key)
		return usage_error(m, "--cert and --key go together");
	if (o->cert && o->cert_dir)
		return usage_error(m, "--cert-dir or --cert/--key, not both");
	if (!o->port)
		o->port = o->tls ? 8883 : 1883;
	if (o->broker_pid && kill(o->broker_pid, 0) != 0 && errno == ESRCH)
		return usage_error(m, "--broker-pid: no process %d", o->broker_pid);
	if (o->mode == BENCH_HOLD)
		o->hold = o->duration;
	if (o->resume && !o->tls)
		return usage_error(m, "--resume needs TLS (--tls, --cafile, --cert-dir, ...)");
	if (o->mode == BENCH_SIGNUP && !o->cert_dir)
		return usage_error(m, "--cert-dir DIR: the new certificates to sign up with");
	if (o->ping_interval > 0 && o->hold <= 0)
		return usage_error(m, "--ping-interval: only with --hold");
	if (o->ping_interval > 0 && o->keepalive && o->ping_interval > o->keepalive)
		return usage_error(m, "--ping-interval %g: more than --keepalive %u (the broker "
				   "would drop the connections)", o->ping_interval, o->keepalive);
	if (o->mode != BENCH_SIGNUP && o->procs > o->connections)
		return usage_error(m, "--procs %d: more processes than --connections %d",
				   o->procs, o->connections);

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *ai;
	char port[8];
	snprintf(port, sizeof port, "%u", o->port);
	int gai = getaddrinfo(o->host, port, &hints, &ai);
	if (gai)
		return usage_error(m, "--host %s: %s", o->host, gai_strerror(gai));
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	if (o->nsrc && o->addr.ss_family != AF_INET)
		return usage_error(m, "--source-addrs: IPv4 addresses, but --host %s is not IPv4",
				   o->host);
	return 0;
}

/* More descriptors than the default 1024 for big floods: raise the soft
 * limit to the hard one, and say so when even that is short. */
static void raise_nofile(const struct bench_opts *o)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	uint64_t conns = o->mode == BENCH_PUBSUB ? (uint64_t)o->publishers + (uint64_t)o->subscribers
						 : (uint64_t)o->connections / (uint64_t)o->procs + 1u;
	uint64_t need = conns + 3u * (uint64_t)o->threads + 16u;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fprintf(stderr, "vouch-bench: note: only %llu file descriptors per process "
			"(ulimit -n); some connections will fail%s\n", (unsigned long long)rl.rlim_cur,
			o->mode == BENCH_PUBSUB ? "" : " (more --procs avoid it)");
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.host = "127.0.0.1",
		.threads = 1,
		.version = MQTT_V311,
		.keepalive = 60,
		.timeout = 10,
		.concurrency = 100,
		.publishers = 1,
		.subscribers = 1,
		.topics = 1,
		.size = 256,
		.duration = 10,
		.drain = 5,
		.inflight = 32,
		.connections = 1000,
		.procs = 1,
	};
	char err[512];
	struct bpool pool = { 0 };

	if (argc < 2)
		return usage_error(NULL, "which mode: pubsub, connect, signup or hold?");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "pubsub"))
		o.mode = BENCH_PUBSUB;
	else if (!strcmp(argv[1], "connect"))
		o.mode = BENCH_CONNECT;
	else if (!strcmp(argv[1], "signup"))
		o.mode = BENCH_SIGNUP;
	else if (!strcmp(argv[1], "hold"))
		o.mode = BENCH_HOLD;
	else
		return usage_error(NULL, "unknown mode '%s' (pubsub, connect, signup or hold)", argv[1]);
	if (o.mode == BENCH_SIGNUP)
		o.connections = 0; /* all the certificates, unless --connections */
	int rc = parse(argc - 1, argv + 1, &o);
	if (rc) {
		free(o.src);
		return rc < 0 ? 0 : rc;
	}

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	raise_nofile(&o);

	if (o.tls) {
		wolfSSL_Init();
		int n = 0;
		if (o.cert_dir)
			n = bpool_load_dir(&pool, o.cert_dir, err, sizeof err);
		else if (o.cert)
			n = bpool_load_pair(&pool, o.cert, o.key, err, sizeof err);
		if (n < 0) {
			fprintf(stderr, "vouch-bench: %s\n", err);
			rc = BENCH_EXIT_FAIL;
			goto out;
		}
		if (o.mode == BENCH_SIGNUP) {
			/* each certificate exactly once */
			if (!o.connections) {
				o.connections = (int)pool.n;
			} else if ((size_t)o.connections > pool.n) {
				rc = usage_error("signup", "--connections %d: only %zu certificates in %s "
						 "(each is used once)", o.connections, pool.n, o.cert_dir);
				goto out;
			}
			if (o.procs > o.connections) {
				rc = usage_error("signup", "--procs %d: more processes than certificates (%d)",
						 o.procs, o.connections);
				goto out;
			}
		}
		uint64_t conns = o.mode == BENCH_PUBSUB ? (uint64_t)o.publishers + (uint64_t)o.subscribers
							: (uint64_t)o.connections;
		if (!o.client_id_prefix && pool.n && conns > pool.n) {
			/* empty client IDs: the broker takes the certificate's CN,
			 * so two connections with one certificate take over */
			if (o.mode == BENCH_PUBSUB) {
				rc = usage_error(mode_names[o.mode],
						 "%llu connections share %zu certificate%s with empty client IDs "
						 "(the broker would take sessions over): add certificates or "
						 "--client-id-prefix", (unsigned long long)conns, pool.n,
						 pool.n == 1 ? "" : "s");
				goto out;
			}
			if (o.hold > 0 && o.mode != BENCH_SIGNUP)
				fprintf(stderr, "vouch-bench: note: %llu connections share %zu certificate%s "
					"with empty client IDs: held ones will be taken over "
					"(--client-id-prefix avoids it)\n", (unsigned long long)conns, pool.n,
					pool.n == 1 ? "" : "s");
		}
	}
	rc = o.mode == BENCH_PUBSUB ? bench_pubsub(&o, &pool) : bench_connect(&o, &pool);
out:
	bpool_free(&pool);
	free(o.src);
	if (o.tls)
		wolfSSL_Cleanup();
	return rc;
}
