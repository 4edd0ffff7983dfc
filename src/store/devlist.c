/* devlist.c - see devlist.h.
 *
 * The rule is documented in dmiofs(8): inside a URI, a ':' does not split
 * the list (nbd://host:10809/export, nbd://[::1]/export), unless what
 * follows it starts a new device that cannot be part of a URI: an absolute
 * path, or another URI.  A local device after a URI must therefore be
 * given as an absolute path, which every example does anyway. */
#include <glib.h>
#include <string.h>

#include "dmio.h"
#include "devlist.h"

/* Where the device starting at p ends: the ':' that separates it from the
 * next one, or NULL when it runs to the end of the list. */
static const char *device_end(const char *p)
{
	const char *q;

	if (!dmio_bdev_path_is_remote(p))
		return strchr(p, ':');
	for (q = strstr(p, "://") + 3; (q = strchr(q, ':')); q++)
		if (q[1] == '/' || dmio_bdev_path_is_remote(q + 1))
			return q;
	return NULL;
}

char *devlist_canonical(const char *dev)
{
	return dmio_bdev_path_is_remote(dev) ? g_strdup(dev) : g_canonicalize_filename(dev, NULL);
}

char **devlist_split(const char *list)
{
	GPtrArray *out = g_ptr_array_new();
	const char *p = list;

	for (;;) {
		const char *end = device_end(p);

		if (!end) {
			g_ptr_array_add(out, g_strdup(p));
			break;
		}
		g_ptr_array_add(out, g_strndup(p, (gsize)(end - p)));
		p = end + 1;
	}
	g_ptr_array_add(out, NULL);
	return (char **)g_ptr_array_free(out, FALSE);
}
