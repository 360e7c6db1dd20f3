// The libxml2 calls ClinicalXML makes, and the few helpers Swift cannot write itself.
#ifndef QIANYUN_CLIBXML2_SHIM_H
#define QIANYUN_CLIBXML2_SHIM_H

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlerror.h>

// xmlFree is a global function pointer variable, which Swift 6 refuses as not concurrency-safe.
static inline void qy_xml_free(void *pointer) { xmlFree(pointer); }

// Marks the parse as refused and stops it: a document type declaration can declare entities
// (billion laughs) and name external DTDs (XXE), and clinical documents never need one. Set as
// the SAX internalSubset/externalSubset handlers, so the refusal happens when the declaration is
// read, before anything in it is looked at, whatever the document's encoding.
static void qy_refuse_document_type(void *context, const xmlChar *name, const xmlChar *externalID, const xmlChar *systemID) {
    (void)name;
    (void)externalID;
    (void)systemID;
    xmlParserCtxtPtr parser = (xmlParserCtxtPtr)context;
    parser->_private = (void *)1;
    xmlStopParser(parser);
}

static void qy_refuse_entity(void *context, const xmlChar *name, int type, const xmlChar *publicId, const xmlChar *systemId,
                             xmlChar *content) {
    (void)name;
    (void)type;
    (void)publicId;
    (void)systemId;
    (void)content;
    xmlParserCtxtPtr parser = (xmlParserCtxtPtr)context;
    parser->_private = (void *)1;
    xmlStopParser(parser);
}

// A parser context that refuses document type declarations and entity declarations.
static inline xmlParserCtxtPtr qy_hardened_parser(void) {
    xmlParserCtxtPtr parser = xmlNewParserCtxt();
    if (parser == NULL || parser->sax == NULL) return parser;
    parser->sax->internalSubset = qy_refuse_document_type;
    parser->sax->externalSubset = qy_refuse_document_type;
    parser->sax->entityDecl = qy_refuse_entity;
    parser->_private = NULL;
    return parser;
}

// libxml2 reports some problems (encoding errors, I/O warnings) through its generic error
// function, which prints to standard error by default: a document's content must not reach the
// logs. The function is per thread, so it is set before every call that may report.
static void qy_ignore_generic_error(void *context, const char *message, ...) {
    (void)context;
    (void)message;
}

static inline void qy_silence_generic_errors(void) {
    xmlSetGenericErrorFunc(NULL, qy_ignore_generic_error);
    xmlThrDefSetGenericErrorFunc(NULL, qy_ignore_generic_error);
}

static inline int qy_parser_refused_document_type(xmlParserCtxtPtr parser) { return parser->_private != NULL; }

#endif
