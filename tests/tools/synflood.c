// SPDX-License-Identifier: MIT
/*
 * synflood - a paced TCP SYN generator for the SYN gate integration tests.
 *
 * Crafts whole Ethernet + IPv4/IPv6 + TCP SYN frames and writes them to one
 * interface through an AF_PACKET socket, so the receiver's XDP program sees
 * them first, exactly as they would arrive from a wire. The frames are meant
 * to be accepted by the receiving kernel as real SYNs (valid IP and TCP
 * checksums, an MSS option), so a test can tell "dropped by the gate" from
 * "dropped as garbage".
 *
 * Sources are random addresses inside the --src-net prefixes, taken round
 * robin, so listing a prefix twice gives it twice the share.
 *
 * Pacing is one absolute CLOCK_MONOTONIC deadline per packet,
 * start + i * 1e9 / rate, never relative to the previous send: a late wakeup
 * or a slow send is caught up by the following packets (they are then due
 * together and go out in one sendmmsg), so the long-term rate does not drift
 * with scheduling noise. Waiting is clock_nanosleep() up to SPIN_NS before the
 * deadline and a busy wait for the rest, with the timer slack cut to 1 ns;
 * above roughly 1e9 / SPIN_NS packets per second this is a pure busy wait.
 *
 * A veth (or a qdisc) that drops our frame makes the send return ENOBUFS
 * (NET_XMIT_DROP): the frame did not leave, so it is sent again after a short
 * sleep and the event is counted. "sent" counts frames the kernel accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC UINT64_C(1000000000)
#define NS_PER_MS UINT64_C(1000000)
#define SPIN_NS UINT64_C(100000)	/* busy wait this long before a deadline */
#define ENOBUFS_SLEEP_NS UINT64_C(20000)
#define STALL_NS (2 * NS_PER_SEC)	/* ENOBUFS without progress: give up */
#define MAX_NETS 256
#define BATCH 64			/* frames per sendmmsg at most */
#define MAX_RATE UINT64_C(100000000)
#define MAX_MS (UINT64_C(1) << 40)

#define ETH_LEN 14
#define IP4_LEN 20
#define IP6_LEN 40
#define TCP_LEN 24			/* 20 + MSS option */
#define FRAME_MAX (ETH_LEN + IP6_LEN + TCP_LEN)
#define SYN_WINDOW 64240
#define SYN_MSS 1460
#define TTL 64

static const char usage_text[] =
	"usage: synflood -i IFACE --dst IP:PORT --dst-mac MAC [--src-net CIDR]...\n"
	"                [--src-port-range A-B] [--rate PPS] [--count N]\n"
	"                [--duration-ms D] [--seed S] [--json]\n"
	"\n"
	"Send TCP SYN frames (Ethernet + IPv4/IPv6 + TCP, SYN only, MSS 1460,\n"
	"window 64240, random ISN, valid checksums) out of IFACE through an\n"
	"AF_PACKET socket. The source MAC is IFACE's own.\n"
	"\n"
	"  -i, --iface IFACE        Ethernet interface to send on\n"
	"  --dst IP:PORT            destination: 10.66.0.2:8080 or [fd66::2]:8080;\n"
	"                           its family picks IPv4 or IPv6\n"
	"  --dst-mac MAC            receiver's MAC, aa:bb:cc:dd:ee:ff\n"
	"  --src-net CIDR           source prefix (repeatable, up to 256, same\n"
	"                           family as --dst): each packet takes the next\n"
	"                           prefix round robin and a random host part in it;\n"
	"                           IPv4 prefixes shorter than /31 skip the network\n"
	"                           and broadcast addresses. Host bits given are\n"
	"                           ignored. Default: IFACE's own address (/32, /128)\n"
	"  --src-port-range A-B     random source port in A..B (default 10000-60000)\n"
	"  --rate PPS               packets per second, evenly paced (default 1000,\n"
	"                           0 = as fast as possible)\n"
	"  --count N                stop after N packets sent\n"
	"  --duration-ms D          stop after D ms (at least one of --count and\n"
	"                           --duration-ms; whichever comes first)\n"
	"  --seed S                 random seed (default: from time and pid)\n"
	"  --json                   print the summary as one JSON object\n"
	"  -h, --help               this text\n"
	"\n"
	"Prints one line: sent=N secs=T pps=P enobufs=E (pps = sent / secs, rounded;\n"
	"enobufs = sends refused with ENOBUFS, i.e. dropped by the device or qdisc,\n"
	"each retried after a short sleep). A warning goes to stderr when the rate\n"
	"achieved is more than 1% below --rate. SIGINT/SIGTERM stop early: summary,\n"
	"then exit 1. Exit: 0 ok, 1 runtime failure, 2 bad arguments.\n";

enum {
	O_DST = 256,
	O_DST_MAC,
	O_SRC_NET,
	O_SPORT,
	O_RATE,
	O_COUNT,
	O_DURATION,
	O_SEED,
	O_JSON,
};

static const struct option long_opts[] = {
	{ "iface", required_argument, NULL, 'i' },
	{ "dst", required_argument, NULL, O_DST },
	{ "dst-mac", required_argument, NULL, O_DST_MAC },
	{ "src-net", required_argument, NULL, O_SRC_NET },
	{ "src-port-range", required_argument, NULL, O_SPORT },
	{ "rate", required_argument, NULL, O_RATE },
	{ "count", required_argument, NULL, O_COUNT },
	{ "duration-ms", required_argument, NULL, O_DURATION },
	{ "seed", required_argument, NULL, O_SEED },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* A source prefix; addresses are kept in host order. */
struct src_net {
	unsigned int plen;
	uint32_t v4;
	uint64_t v6[2];		/* [0]: high 64 bits */
};

struct cfg {
	const char *iface;
	int ifindex;
	int family;		/* AF_INET or AF_INET6, from --dst */
	uint8_t dst[16];	/* network order, 4 or 16 bytes used */
	uint16_t dport;
	uint8_t dst_mac[6];
	bool have_dst_mac;
	struct src_net nets[MAX_NETS];
	unsigned int nnets;
	uint16_t sport_lo, sport_hi;
	uint64_t rate;
	uint64_t count;		/* 0: no limit */
	uint64_t duration_ms;	/* 0: no limit */
	bool have_count, have_duration;
	uint64_t seed;
	bool have_seed;
	bool json;
};

static struct cfg cfg;
static volatile sig_atomic_t stop_sig;

/* ---- messages, time, random ---------------------------------------------- */

static void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("synflood: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("synflood: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t / NS_PER_SEC),
		.tv_nsec = (long)(t % NS_PER_SEC),
	};

	/* EINTR is fine: every caller rechecks the clock and stop_sig */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Wait until CLOCK_MONOTONIC reaches t (or a signal); returns the time. */
static uint64_t wait_until(uint64_t t)
{
	uint64_t now;

	for (;;) {
		now = now_ns();
		if (now >= t || stop_sig)
			return now;
		if (t - now > SPIN_NS)
			sleep_until(t - SPIN_NS);
		else
			cpu_relax();
	}
}

static uint64_t rng_s[4];	/* xoshiro256** */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng_s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t r = rotl(rng_s[1] * 5, 7) * 9;
	uint64_t t = rng_s[1] << 17;

	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return r;
}

/* Uniform in [0, n), n >= 1; the bias of the multiply-shift is < n / 2^64. */
static uint64_t rng_below(uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next() * n) >> 64);
}

/* ---- argument parsing ---------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && !*end;
}

static uint64_t num_arg(const char *name, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (!parse_u64(s, &v) || v < min || v > max)
		usage_error("--%s %s: want a number in %" PRIu64 "..%" PRIu64, name, s, min,
			    max);
	return v;
}

/* "10.66.0.2:8080" or "[fd66::2]:8080" */
static void parse_dst(const char *s)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port;
	size_t hlen;
	uint64_t p;

	if (*s == '[') {
		colon = strstr(s, "]:");
		if (!colon)
			usage_error("--dst %s: want IP:PORT or [IPv6]:PORT", s);
		hlen = (size_t)(colon - s - 1);
		port = colon + 2;
		cfg.family = AF_INET6;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			usage_error("--dst %s: want IP:PORT or [IPv6]:PORT", s);
		hlen = (size_t)(colon - s);
		port = colon + 1;
		cfg.family = AF_INET;
	}
	if (hlen >= sizeof(host))
		usage_error("--dst %.*s: bad address", (int)hlen, s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(cfg.family, host, cfg.dst) != 1)
		usage_error("--dst %s: bad %s address%s", host,
			    cfg.family == AF_INET ? "IPv4" : "IPv6",
			    cfg.family == AF_INET && strchr(host, ':') ? " (IPv6 needs [ADDR]:PORT)" :
									 "");
	if (!parse_u64(port, &p) || p < 1 || p > 65535)
		usage_error("--dst: bad port '%s'", port);
	cfg.dport = (uint16_t)p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void parse_mac(const char *s)
{
	const char *p = s;

	for (int i = 0; i < 6; i++) {
		int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);

		if (lo < 0 || p[2] != (i < 5 ? ':' : '\0'))
			usage_error("--dst-mac %s: want aa:bb:cc:dd:ee:ff", s);
		cfg.dst_mac[i] = (uint8_t)(hi << 4 | lo);
		p += 3;
	}
	cfg.have_dst_mac = true;
}

static uint64_t load_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Mask of the top plen bits of a 64-bit word, plen 0..64. */
static uint64_t mask64(unsigned int plen)
{
	return plen ? ~UINT64_C(0) << (64 - plen) : 0;
}

/* Store prefix addr/plen (addr in network order) with its host bits cleared. */
static void add_net(const uint8_t *addr, unsigned int plen)
{
	struct src_net *n = &cfg.nets[cfg.nnets++];

	n->plen = plen;
	if (cfg.family == AF_INET) {
		uint32_t a = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 |
			     (uint32_t)addr[2] << 8 | addr[3];

		n->v4 = plen ? a & (~UINT32_C(0) << (32 - plen)) : 0;
	} else {
		n->v6[0] = load_be64(addr) & mask64(plen < 64 ? plen : 64);
		n->v6[1] = load_be64(addr + 8) & mask64(plen > 64 ? plen - 64 : 0);
	}
}

/* Needs --dst first (the family); main() parses --src-net after the loop. */
static void parse_net(const char *s)
{
	char host[INET6_ADDRSTRLEN + 1];
	uint8_t addr[16];
	const char *slash = strchr(s, '/');
	unsigned int maxlen = cfg.family == AF_INET ? 32 : 128;
	int fam;
	uint64_t plen;

	if (!slash || (size_t)(slash - s) >= sizeof(host))
		usage_error("--src-net %s: want ADDR/PREFIXLEN", s);
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = '\0';
	fam = strchr(host, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(fam, host, addr) != 1)
		usage_error("--src-net %s: bad address", s);
	if (fam != cfg.family)
		usage_error("--src-net %s: not the address family of --dst", s);
	if (!parse_u64(slash + 1, &plen) || plen > maxlen)
		usage_error("--src-net %s: bad prefix", s);
	add_net(addr, (unsigned int)plen);
}

static void parse_ports(const char *s)
{
	const char *dash = strchr(s, '-');
	char lo[8];
	uint64_t a, b;

	if (!dash) {
		if (!parse_u64(s, &a))
			goto bad;
		b = a;
	} else {
		if ((size_t)(dash - s) >= sizeof(lo))
			goto bad;
		memcpy(lo, s, (size_t)(dash - s));
		lo[dash - s] = '\0';
		if (!parse_u64(lo, &a) || !parse_u64(dash + 1, &b))
			goto bad;
	}
	if (a < 1 || b > 65535 || a > b)
		goto bad;
	cfg.sport_lo = (uint16_t)a;
	cfg.sport_hi = (uint16_t)b;
	return;
bad:
	usage_error("--src-port-range %s: want A-B with 1 <= A <= B <= 65535", s);
}

/* No --src-net: IFACE's own address (for IPv6 the first one not link-local). */
static void default_net(void)
{
	struct ifaddrs *ifa_list, *ifa;
	const uint8_t *a = NULL;

	if (getifaddrs(&ifa_list) < 0) {
		errmsg("getifaddrs: %s", strerror(errno));
		exit(1);
	}
	for (ifa = ifa_list; ifa && !a; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != cfg.family ||
		    strcmp(ifa->ifa_name, cfg.iface))
			continue;
		if (cfg.family == AF_INET) {
			a = (const uint8_t *)&((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
		} else {
			const struct in6_addr *a6 = &((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;

			if (!IN6_IS_ADDR_LINKLOCAL(a6))
				a = a6->s6_addr;
		}
		if (a)
			add_net(a, cfg.family == AF_INET ? 32 : 128);
	}
	freeifaddrs(ifa_list);
	if (!a)
		usage_error("%s has no %s address to send from; give --src-net", cfg.iface,
			    cfg.family == AF_INET ? "IPv4" : "global IPv6");
}

static void parse_args(int argc, char **argv)
{
	const char *nets[MAX_NETS];
	unsigned int nnets = 0;
	int c;

	cfg.sport_lo = 10000;
	cfg.sport_hi = 60000;
	cfg.rate = 1000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hi:", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'i':
			cfg.iface = optarg;
			break;
		case O_DST:
			parse_dst(optarg);
			break;
		case O_DST_MAC:
			parse_mac(optarg);
			break;
		case O_SRC_NET:
			if (nnets == MAX_NETS)
				usage_error("--src-net %s: more than %d prefixes", optarg,
					    MAX_NETS);
			nets[nnets++] = optarg;
			break;
		case O_SPORT:
			parse_ports(optarg);
			break;
		case O_RATE:
			cfg.rate = num_arg("rate", optarg, 0, MAX_RATE);
			break;
		case O_COUNT:
			cfg.count = num_arg("count", optarg, 1, UINT64_MAX);
			cfg.have_count = true;
			break;
		case O_DURATION:
			cfg.duration_ms = num_arg("duration-ms", optarg, 1, MAX_MS);
			cfg.have_duration = true;
			break;
		case O_SEED:
			cfg.seed = num_arg("seed", optarg, 0, UINT64_MAX);
			cfg.have_seed = true;
			break;
		case O_JSON:
			cfg.json = true;
			break;
		case ':':
			usage_error("%s: missing argument", argv[optind - 1]);
		default:
			if (optopt)
				usage_error("unknown option -%c (see synflood -h)", optopt);
			usage_error("unknown option %s (see synflood -h)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!cfg.iface)
		usage_error("missing -i IFACE");
	if (!cfg.family)
		usage_error("missing --dst IP:PORT");
	if (!cfg.have_dst_mac)
		usage_error("missing --dst-mac MAC");
	if (!cfg.have_count && !cfg.have_duration)
		usage_error("give --count N or --duration-ms D (or both)");
	cfg.ifindex = (int)if_nametoindex(cfg.iface);
	if (!cfg.ifindex)
		usage_error("-i %s: %s", cfg.iface, strerror(errno));
	for (unsigned int i = 0; i < nnets; i++)
		parse_net(nets[i]);
	if (!cfg.nnets)
		default_net();
}

/* ---- frames -------------------------------------------------------------- */

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* Ones' complement sum of big-endian 16-bit words (len even). */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint64_t)p[i] << 8 | p[i + 1];
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

struct frame {
	uint8_t buf[FRAME_MAX];
};

static struct frame tmpl;	/* everything but the per-packet fields */
static size_t frame_len, l4_off;

static void tmpl_init(const uint8_t *src_mac)
{
	uint8_t *eth = tmpl.buf, *ip = eth + ETH_LEN, *tcp;

	memcpy(eth, cfg.dst_mac, 6);
	memcpy(eth + 6, src_mac, 6);
	if (cfg.family == AF_INET) {
		put16(eth + 12, ETH_P_IP);
		ip[0] = 0x45;
		put16(ip + 2, IP4_LEN + TCP_LEN);
		put16(ip + 6, 0x4000);		/* DF, as Linux sends SYNs */
		ip[8] = TTL;
		ip[9] = IPPROTO_TCP;
		memcpy(ip + 16, cfg.dst, 4);
		l4_off = ETH_LEN + IP4_LEN;
	} else {
		put16(eth + 12, ETH_P_IPV6);
		ip[0] = 0x60;
		put16(ip + 4, TCP_LEN);
		ip[6] = IPPROTO_TCP;
		ip[7] = TTL;
		memcpy(ip + 24, cfg.dst, 16);
		l4_off = ETH_LEN + IP6_LEN;
	}
	frame_len = l4_off + TCP_LEN;
	tcp = tmpl.buf + l4_off;
	put16(tcp + 2, cfg.dport);
	tcp[12] = (TCP_LEN / 4) << 4;
	tcp[13] = 0x02;				/* SYN */
	put16(tcp + 14, SYN_WINDOW);
	tcp[20] = 2;				/* MSS, length 4 */
	tcp[21] = 4;
	put16(tcp + 22, SYN_MSS);
}

/* Fill in source address, port, ISN, IP ID and both checksums. */
static void frame_build(struct frame *f, uint64_t pkt)
{
	const struct src_net *n = &cfg.nets[pkt % cfg.nnets];
	uint8_t *ip = f->buf + ETH_LEN, *tcp = f->buf + l4_off, *src, *dst;
	size_t alen;
	uint64_t sum;

	memcpy(f->buf, tmpl.buf, frame_len);
	if (cfg.family == AF_INET) {
		unsigned int hbits = 32 - n->plen;
		uint64_t host;

		/* skip the network and broadcast addresses below /31 */
		if (hbits >= 2)
			host = 1 + rng_below((UINT64_C(1) << hbits) - 2);
		else
			host = rng_below(UINT64_C(1) << hbits);
		src = ip + 12;
		dst = ip + 16;
		alen = 4;
		put32(src, n->v4 | (uint32_t)host);
		put16(ip + 4, (uint16_t)rng_next());
		put16(ip + 10, csum_fold(csum_add(0, ip, IP4_LEN)));
	} else {
		uint64_t m0 = ~mask64(n->plen < 64 ? n->plen : 64);
		uint64_t m1 = ~mask64(n->plen > 64 ? n->plen - 64 : 0);
		uint64_t h0, h1;

		/* all-zero host is the subnet-router anycast address */
		do {
			h0 = rng_next() & m0;
			h1 = rng_next() & m1;
		} while (!h0 && !h1 && n->plen < 127);
		src = ip + 8;
		dst = ip + 24;
		alen = 16;
		put64(src, n->v6[0] | h0);
		put64(src + 8, n->v6[1] | h1);
	}
	put16(tcp, (uint16_t)(cfg.sport_lo + rng_below(cfg.sport_hi - cfg.sport_lo + 1u)));
	put32(tcp + 4, (uint32_t)rng_next());
	/* pseudo header: addresses, protocol, TCP length; same sum for v4 and v6 */
	sum = csum_add(0, src, alen);
	sum = csum_add(sum, dst, alen);
	sum += IPPROTO_TCP + TCP_LEN;
	sum = csum_add(sum, tcp, TCP_LEN);
	put16(tcp + 16, csum_fold(sum));
}

/* ---- sending ------------------------------------------------------------- */

struct run {
	int fd;
	struct sockaddr_ll sll;
	uint64_t start, end;	/* end: UINT64_MAX without --duration-ms */
	uint64_t sent, enobufs;
	struct frame frames[BATCH];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
};

static int sock_open(struct run *r, uint8_t *src_mac)
{
	struct ifreq ifr;
	int err;

	r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		err = errno;
		errmsg("socket(AF_PACKET): %s", strerror(err));
		return -err;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg.iface);
	if (ioctl(r->fd, SIOCGIFHWADDR, &ifr) < 0) {
		err = errno;
		errmsg("%s: SIOCGIFHWADDR: %s", cfg.iface, strerror(err));
		return -err;
	}
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		usage_error("-i %s: not an Ethernet interface", cfg.iface);
	memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
	/*
	 * Without carrier the kernel swaps in the noop qdisc, which drops every
	 * frame yet reports success: refuse rather than count phantom packets.
	 */
	if (ioctl(r->fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = errno;
		errmsg("%s: SIOCGIFFLAGS: %s", cfg.iface, strerror(err));
		return -err;
	}
	if ((ifr.ifr_flags & (IFF_UP | IFF_RUNNING)) != (IFF_UP | IFF_RUNNING)) {
		errmsg("%s: %s", cfg.iface, ifr.ifr_flags & IFF_UP ? "no carrier" : "link is down");
		return -ENETDOWN;
	}
	/*
	 * Protocol 0 in both socket() and bind(): the socket is only bound to
	 * the interface and never receives. The protocol of each frame (which
	 * sets skb->protocol) comes with the destination address of sendmmsg.
	 */
	memset(&r->sll, 0, sizeof(r->sll));
	r->sll.sll_family = AF_PACKET;
	r->sll.sll_ifindex = cfg.ifindex;
	if (bind(r->fd, (struct sockaddr *)&r->sll, sizeof(r->sll)) < 0) {
		err = errno;
		errmsg("bind %s: %s", cfg.iface, strerror(err));
		return -err;
	}
	r->sll.sll_protocol = htons(cfg.family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	r->sll.sll_halen = 6;
	memcpy(r->sll.sll_addr, cfg.dst_mac, 6);
	return 0;
}

/* After tmpl_init(): one message per frame slot, all to the same address. */
static void msgs_init(struct run *r)
{
	for (int i = 0; i < BATCH; i++) {
		r->iov[i].iov_base = r->frames[i].buf;
		r->iov[i].iov_len = frame_len;
		r->msgs[i].msg_hdr.msg_name = &r->sll;
		r->msgs[i].msg_hdr.msg_namelen = sizeof(r->sll);
		r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
		r->msgs[i].msg_hdr.msg_iovlen = 1;
	}
}

/*
 * Send frames [0, n). Returns 0 when all went out, 1 when the run must stop
 * first (signal, end of --duration-ms), -errno on a fatal send error (logged).
 *
 * sendmmsg returns the count sent and forgets the error of the frame that
 * failed, so a short count is treated as one ENOBUFS: that frame was dropped
 * on the way out; any other error repeats on the retry and is reported then.
 */
static int send_frames(struct run *r, int n)
{
	uint64_t last_progress = now_ns();
	int done = 0;

	while (done < n) {
		int ret = sendmmsg(r->fd, r->msgs + done, (unsigned int)(n - done), 0);
		int err = ret < 0 ? errno : 0;
		uint64_t now;

		if (ret > 0) {
			done += ret;
			r->sent += (uint64_t)ret;
			last_progress = now_ns();
			if (done == n)
				break;
			err = ENOBUFS;
		}
		if (err == EINTR) {
			if (stop_sig)
				return 1;
			continue;
		}
		if (err != ENOBUFS && err != EAGAIN) {
			errmsg("send on %s: %s", cfg.iface, strerror(err));
			return -err;
		}
		r->enobufs++;
		now = now_ns();
		if (stop_sig || now >= r->end)
			return 1;
		if (now - last_progress > STALL_NS) {
			errmsg("send on %s: %s for %" PRIu64 " s, giving up", cfg.iface,
			       strerror(err), STALL_NS / NS_PER_SEC);
			return -err;
		}
		sleep_until(now + ENOBUFS_SLEEP_NS);
	}
	return 0;
}

/* Deadline of packet i: start + i / rate seconds, exact in the long run. */
static uint64_t due(const struct run *r, uint64_t i)
{
	return r->start + (uint64_t)((unsigned __int128)i * NS_PER_SEC / cfg.rate);
}

/* Returns 0 when --count or --duration-ms ended the run, 1 on a signal, -errno. */
static int flood(struct run *r)
{
	uint64_t i = 0, limit = cfg.have_count ? cfg.count : UINT64_MAX;
	uint64_t now, t;
	int n, ret;

	r->start = now_ns();
	r->end = cfg.have_duration ? r->start + cfg.duration_ms * NS_PER_MS : UINT64_MAX;
	while (i < limit) {
		if (cfg.rate) {
			t = due(r, i);
			if (t >= r->end) {
				wait_until(r->end);
				break;
			}
			now = wait_until(t);
		} else {
			now = now_ns();
		}
		if (stop_sig)
			return 1;
		if (now >= r->end)
			break;
		/* everything already due goes out in one call (catching up) */
		n = 1;
		while (n < BATCH && i + (uint64_t)n < limit &&
		       (!cfg.rate || due(r, i + (uint64_t)n) <= now))
			n++;
		for (int k = 0; k < n; k++)
			frame_build(&r->frames[k], i + (uint64_t)k);
		ret = send_frames(r, n);
		if (ret)
			return ret < 0 ? ret : stop_sig ? 1 : 0;
		i += (uint64_t)n;
	}
	return 0;
}

static void on_signal(int sig)
{
	stop_sig = sig;
}

int main(int argc, char **argv)
{
	static struct run run;	/* ~8 KiB of frames, kept off the stack */
	struct sigaction sa;
	uint8_t src_mac[6];
	uint64_t elapsed;
	double secs, pps;
	int ret;

	parse_args(argc, argv);
	if (!cfg.have_seed)
		cfg.seed = now_ns() ^ (uint64_t)getpid() << 32;
	rng_seed(cfg.seed);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: a blocked send returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* nanosleep wakeups within a microsecond, not the default 50 us */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	run.fd = -1;
	if (sock_open(&run, src_mac)) {
		if (run.fd >= 0)
			close(run.fd);
		return 1;
	}
	tmpl_init(src_mac);
	msgs_init(&run);
	ret = flood(&run);
	elapsed = now_ns() - run.start;
	close(run.fd);

	secs = (double)elapsed / 1e9;
	pps = secs > 0 ? (double)run.sent / secs : 0;
	if (cfg.json)
		printf("{\"sent\":%" PRIu64 ",\"secs\":%.3f,\"pps\":%.0f,\"enobufs\":%" PRIu64
		       "}\n",
		       run.sent, secs, pps, run.enobufs);
	else
		printf("sent=%" PRIu64 " secs=%.3f pps=%.0f enobufs=%" PRIu64 "\n", run.sent,
		       secs, pps, run.enobufs);
	fflush(stdout);
	if (ret < 0)
		return 1;
	if (ret > 0) {
		errmsg("interrupted by signal %d", (int)stop_sig);
		return 1;
	}
	if (cfg.rate && run.sent > 1 && pps < (double)cfg.rate * 0.99)
		errmsg("warning: %.0f pps achieved, below --rate %" PRIu64, pps, cfg.rate);
	return 0;
}
