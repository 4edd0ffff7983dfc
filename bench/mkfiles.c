/* mkfiles - create many small files quickly (for the metadata memory
 * benchmark): N files of SIZE bytes, spread over directories of 1000.
 *   mkfiles DIR N SIZE */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], data[65536];
	unsigned long n, size;

	if (argc != 4) {
		fprintf(stderr, "usage: mkfiles DIR N SIZE\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	size = strtoul(argv[3], NULL, 10);
	if (size > sizeof(data)) {
		fprintf(stderr, "mkfiles: SIZE at most %zu\n", sizeof(data));
		return 2;
	}
	for (unsigned long i = 0; i < n; i++) {
		int fd;

		if (i % 1000 == 0) {
			snprintf(path, sizeof(path), "%s/d%06lu", argv[1], i / 1000);
			if (mkdir(path, 0755) && errno != EEXIST) {
				perror(path);
				return 1;
			}
		}
		snprintf(path, sizeof(path), "%s/d%06lu/f%06lu", argv[1], i / 1000, i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		memset(data, (int)(i & 0xff), size);
		if (size && write(fd, data, size) != (ssize_t)size) {
			perror(path);
			return 1;
		}
		if (close(fd)) {
			perror(path);
			return 1;
		}
	}
	return 0;
}
