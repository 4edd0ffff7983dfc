/* test-devlist.c - device lists joined by ':' (devlist_split): local paths
 * split at every ':', an NBD URI's own colons (a port, an IPv6 address)
 * do not, and a URI ends where an absolute path or another URI begins. */
#include <glib.h>

#include "devlist.h"

static void assert_split(const char *list, const char *const *want)
{
	char **got = devlist_split(list);
	guint n = g_strv_length(got);

	g_assert_cmpuint(n, ==, g_strv_length((char **)want));
	for (guint i = 0; i < n; i++)
		g_assert_cmpstr(got[i], ==, want[i]);
	g_strfreev(got);
}

static void test_local(void)
{
	assert_split("/srv/a.img", (const char *const[]){ "/srv/a.img", NULL });
	assert_split("/dev/sdb:/dev/sdc:b.img", (const char *const[]){ "/dev/sdb", "/dev/sdc", "b.img", NULL });
	/* empty names stay, for the caller to refuse */
	assert_split("a::b", (const char *const[]){ "a", "", "b", NULL });
	assert_split("a:", (const char *const[]){ "a", "", NULL });
}

static void test_uris(void)
{
	assert_split("/srv/a.img:nbd+unix:///d?socket=/run/d.sock",
		     (const char *const[]){ "/srv/a.img", "nbd+unix:///d?socket=/run/d.sock", NULL });
	assert_split("nbd+unix:///d?socket=/run/d.sock:/srv/a.img",
		     (const char *const[]){ "nbd+unix:///d?socket=/run/d.sock", "/srv/a.img", NULL });
	assert_split("/dev/sdb:nbd://backup1:10809/data",
		     (const char *const[]){ "/dev/sdb", "nbd://backup1:10809/data", NULL });
	assert_split("nbd://[::1]:10809/x:nbds://h/y:/dev/sdc",
		     (const char *const[]){ "nbd://[::1]:10809/x", "nbds://h/y", "/dev/sdc", NULL });
	/* after a URI, a relative path is part of it: the documented rule */
	assert_split("nbd://h/x:b.img", (const char *const[]){ "nbd://h/x:b.img", NULL });
}

static void test_canonical(void)
{
	char *uri = devlist_canonical("nbd://h:10809/x");
	char *path = devlist_canonical("/srv/../srv/a.img");

	g_assert_cmpstr(uri, ==, "nbd://h:10809/x");
	g_assert_cmpstr(path, ==, "/srv/a.img");
	g_free(uri);
	g_free(path);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/devlist/local", test_local);
	g_test_add_func("/devlist/uris", test_uris);
	g_test_add_func("/devlist/canonical", test_canonical);
	return g_test_run();
}
