/*
 * fuzz_scope.c
 *		libFuzzer harness of ak_scope_valid and ak_scope_covers.
 *
 * The input is up to three strings separated by '\n' (never valid in a
 * scope): g, w and x.  Properties:
 *  1. ak_scope_valid agrees with an independent reference of the grammar:
 *     "*", or ':'-separated non-empty segments of [a-z0-9_.-], the last of
 *     which may be "*" when there are two or more; 1 to 128 characters.
 *  2. covers(s, s) for every valid s; "*" covers everything.
 *  3. A valid scope without a wildcard covers exactly itself; "a:*" covers
 *     exactly the strings longer than "a:" that start with "a:".
 *  4. Among valid scopes covering is transitive: covers(g,w) and covers(w,x)
 *     imply covers(g,x).
 *  5. Nothing reads outside the strings (ASan), whatever their content,
 *     valid or not.
 */
#include "fuzz_common.h"

static bool
scope_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '.' || c == '-';
}

static bool
reference_valid(const char *s, size_t len)
{
	size_t		start = 0;
	size_t		segments = 0;

	if (len < 1 || len > AK_SCOPE_MAX)
		return false;
	if (len == 1 && s[0] == '*')
		return true;
	while (start <= len)
	{
		const char *colon = memchr(s + start, ':', len - start);
		size_t		end = colon ? (size_t) (colon - s) : len;
		bool		last = colon == NULL;

		if (end == start)
			return false;		/* empty segment */
		segments++;
		if (last && segments >= 2 && end - start == 1 && s[start] == '*')
			return true;
		for (size_t i = start; i < end; i++)
			if (!scope_char((unsigned char) s[i]))
				return false;
		if (last)
			return true;
		start = end + 1;
	}
	return false;				/* trailing ':' */
}

static bool
is_wildcard(const char *s, size_t len)
{
	return len >= 2 && s[len - 1] == '*' && s[len - 2] == ':';
}

static bool
covers(const char *g, size_t glen, const char *w, size_t wlen)
{
	char	   *gc = fuzz_dup((const uint8_t *) g, glen);
	char	   *wc = fuzz_dup((const uint8_t *) w, wlen);
	bool		r = ak_scope_covers(gc, glen, wc, wlen);

	free(gc);
	free(wc);
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *part[3] = {"", "", ""};
	size_t		plen[3] = {0, 0, 0};
	bool		valid[3];
	const char *s = (const char *) data;
	size_t		n = 0;
	size_t		start = 0;

	for (size_t i = 0; i <= size && n < 3; i++)
	{
		if (i == size || s[i] == '\n')
		{
			part[n] = s + start;
			plen[n] = i - start;
			n++;
			start = i + 1;
		}
	}

	for (int i = 0; i < 3; i++)
	{
		char	   *copy = fuzz_dup((const uint8_t *) part[i], plen[i]);

		valid[i] = ak_scope_valid(copy, plen[i]);
		free(copy);
		CHECK(valid[i] == reference_valid(part[i], plen[i]),
			  "ak_scope_valid(\"%.*s\") = %d, reference disagrees",
			  (int) plen[i], part[i], valid[i]);
		CHECK(covers("*", 1, part[i], plen[i]), "\"*\" does not cover a string");
		if (valid[i])
			CHECK(covers(part[i], plen[i], part[i], plen[i]),
				  "\"%.*s\" does not cover itself", (int) plen[i], part[i]);
	}

	if (valid[0])
	{
		const char *g = part[0];
		size_t		glen = plen[0];
		const char *w = part[1];
		size_t		wlen = plen[1];
		bool		expect;

		if (glen == 1 && g[0] == '*')
			expect = true;
		else if (is_wildcard(g, glen))
			expect = wlen > glen - 1 && memcmp(g, w, glen - 1) == 0;
		else
			expect = wlen == glen && memcmp(g, w, glen) == 0;
		CHECK(covers(g, glen, w, wlen) == expect,
			  "covers(\"%.*s\", \"%.*s\") != %d",
			  (int) glen, g, (int) wlen, w, expect);
	}
	else
	{
		/* invalid granted scopes: only memory safety is asked of covers */
		(void) covers(part[0], plen[0], part[1], plen[1]);
	}

	if (valid[0] && valid[1] && valid[2] &&
		covers(part[0], plen[0], part[1], plen[1]) &&
		covers(part[1], plen[1], part[2], plen[2]))
		CHECK(covers(part[0], plen[0], part[2], plen[2]),
			  "covering is not transitive: \"%.*s\" \"%.*s\" \"%.*s\"",
			  (int) plen[0], part[0], (int) plen[1], part[1],
			  (int) plen[2], part[2]);
	return 0;
}
