/*
 * fuzz_resource.c
 *		libFuzzer harness of ak_resource_valid.
 *
 * Properties:
 *  1. ak_resource_valid agrees with an independent reference of the
 *     grammar: "<type>:<id>", type of [a-z0-9_.-]+ before the first ':',
 *     id of printable ASCII without spaces (0x21-0x7e, ':' included),
 *     1 to 200 characters.
 *  2. It reads nothing outside the string (ASan), whatever the bytes
 *     (NUL, high-bit and control characters included).
 *  3. A valid resource stays valid when its id is shortened to one
 *     character, and invalid once its length exceeds 200.
 */
#include "fuzz_common.h"

static bool
reference_valid(const unsigned char *s, size_t len)
{
	size_t		i = 0;

	if (len < 1 || len > AK_RESOURCE_MAX)
		return false;
	while (i < len && s[i] != ':')
	{
		unsigned char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '.' || c == '-'))
			return false;
		i++;
	}
	if (i == 0 || i == len || i == len - 1)
		return false;			/* no type, no ':' or no id */
	for (i++; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = fuzz_dup(data, size);
	bool		valid = ak_resource_valid(copy, size);

	CHECK(valid == reference_valid(data, size),
		  "ak_resource_valid(\"%.*s\") = %d, reference disagrees",
		  (int) size, (const char *) data, valid);
	if (valid)
	{
		const char *colon = memchr(copy, ':', size);
		size_t		short_len = (size_t) (colon - copy) + 2;

		CHECK(ak_resource_valid(copy, short_len), "shortened id rejected");
	}
	free(copy);

	if (size > 0 && size <= AK_RESOURCE_MAX)
	{
		/* the same text padded beyond the limit */
		char	   *big = malloc(AK_RESOURCE_MAX + 1);

		memset(big, 'x', AK_RESOURCE_MAX + 1);
		memcpy(big, data, size);
		CHECK(!ak_resource_valid(big, AK_RESOURCE_MAX + 1), "201 characters accepted");
		free(big);
	}
	return 0;
}
