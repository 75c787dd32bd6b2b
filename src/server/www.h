/* The demo page's files, embedded in the binary (the table is generated at build time from
 * src/server/www/ by src/server/embed.cmake). */
#ifndef CAMD_SERVER_WWW_H
#define CAMD_SERVER_WWW_H

#include <stddef.h>

typedef struct camd__www_file {
  const char *name;
  const unsigned char *data;
  size_t len;
} camd__www_file;
extern const camd__www_file camd__www_files[]; /* camd__www_count entries, then {NULL} */
extern const size_t camd__www_count;

#endif
