#ifndef CLIBXML2_SHIM_H
#define CLIBXML2_SHIM_H
/* Swift 6.3.1 on Debian: libxml2's ICU declarations clash with Foundation's bundled ICU
   (UErrorCode defined twice). Dropping LIBXML_ICU_ENABLED only hides ICU-only trailing
   fields of xmlCharEncodingHandler, which we never touch by value. */
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlerror.h>
#endif
