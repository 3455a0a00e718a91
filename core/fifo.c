#include "core/fifo.h"

#include <stdlib.h>
#include <string.h>

/* See core/fifo.h. */
void *fifo_grow(void *v, uint32_t *cap, uint32_t *head, uint32_t n, size_t size, uint32_t first_cap)
{
	uint32_t nc = *cap ? *cap * 2 : first_cap;
	char *nv = malloc((size_t)nc * size);

	if (!nv)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		memcpy(nv + (size_t)i * size, (char *)v + (size_t)((*head + i) % *cap) * size, size);
	free(v);
	*cap = nc;
	*head = 0;
	return nv;
}
