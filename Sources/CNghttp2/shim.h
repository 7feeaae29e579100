// Shims over libnghttp2 (Debian 12: 1.52). Imported (`internal import`, not re-exported) by the two
// nghttp2 wrappers: EncoreTransport's HTTP2Session (server) and EncoreClient's HTTP2ClientConnection
// (the tools and the load generator).
// Unions and macros are awkward from Swift; these static inline helpers give them plain names.
#ifndef ENCORE_CNGHTTP2_SHIM_H
#define ENCORE_CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#include <stdint.h>

static inline uint8_t cnghttp2_frame_type(const nghttp2_frame *frame) { return frame->hd.type; }
static inline uint8_t cnghttp2_frame_flags(const nghttp2_frame *frame) { return frame->hd.flags; }
static inline int32_t cnghttp2_frame_stream_id(const nghttp2_frame *frame) { return frame->hd.stream_id; }
static inline int cnghttp2_frame_headers_category(const nghttp2_frame *frame) { return (int)frame->headers.cat; }
static inline uint32_t cnghttp2_frame_rst_error_code(const nghttp2_frame *frame) { return frame->rst_stream.error_code; }

static inline nghttp2_nv cnghttp2_nv(const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen,
                                     int copy_value) {
    nghttp2_nv nv;
    nv.name = (uint8_t *)name;
    nv.value = (uint8_t *)value;
    nv.namelen = namelen;
    nv.valuelen = valuelen;
    nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | (copy_value ? 0 : NGHTTP2_NV_FLAG_NO_COPY_VALUE);
    return nv;
}

static inline nghttp2_settings_entry cnghttp2_setting(int32_t id, uint32_t value) {
    nghttp2_settings_entry e;
    e.settings_id = id;
    e.value = value;
    return e;
}

static inline nghttp2_data_provider cnghttp2_data_provider(nghttp2_data_source_read_callback cb) {
    nghttp2_data_provider p;
    p.source.ptr = 0;
    p.read_callback = cb;
    return p;
}

/// A data provider whose source carries an integer (the owner's slot index), handed back to
/// the read callback without a stream lookup.
static inline nghttp2_data_provider cnghttp2_data_provider_tagged(nghttp2_data_source_read_callback cb, int tag) {
    nghttp2_data_provider p;
    p.source.ptr = 0;
    p.source.fd = tag;
    p.read_callback = cb;
    return p;
}

static inline int cnghttp2_data_source_tag(nghttp2_data_source *source) { return source->fd; }

enum {
    CNGHTTP2_FRAME_DATA = NGHTTP2_DATA,
    CNGHTTP2_FRAME_HEADERS = NGHTTP2_HEADERS,
    CNGHTTP2_FRAME_RST_STREAM = NGHTTP2_RST_STREAM,
    CNGHTTP2_FRAME_GOAWAY = NGHTTP2_GOAWAY,
    CNGHTTP2_FLAG_END_STREAM = NGHTTP2_FLAG_END_STREAM,
    CNGHTTP2_HCAT_REQUEST = NGHTTP2_HCAT_REQUEST,
    CNGHTTP2_HCAT_HEADERS = NGHTTP2_HCAT_HEADERS,
    CNGHTTP2_DATA_FLAG_EOF = NGHTTP2_DATA_FLAG_EOF,
    CNGHTTP2_DATA_FLAG_NO_END_STREAM = NGHTTP2_DATA_FLAG_NO_END_STREAM,
    CNGHTTP2_ERR_DEFERRED = NGHTTP2_ERR_DEFERRED,
    CNGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE,
    CNGHTTP2_ERR_CALLBACK_FAILURE = NGHTTP2_ERR_CALLBACK_FAILURE,
    CNGHTTP2_ERR_BAD_CLIENT_MAGIC = NGHTTP2_ERR_BAD_CLIENT_MAGIC,
    CNGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
    CNGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
    CNGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
    CNGHTTP2_SETTINGS_ENABLE_PUSH = NGHTTP2_SETTINGS_ENABLE_PUSH,
    CNGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES = NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES,
    CNGHTTP2_NO_ERROR = NGHTTP2_NO_ERROR,
    CNGHTTP2_PROTOCOL_ERROR = NGHTTP2_PROTOCOL_ERROR,
    CNGHTTP2_INTERNAL_ERROR = NGHTTP2_INTERNAL_ERROR,
    CNGHTTP2_CANCEL = NGHTTP2_CANCEL,
    CNGHTTP2_REFUSED_STREAM = NGHTTP2_REFUSED_STREAM,
    CNGHTTP2_ENHANCE_YOUR_CALM = NGHTTP2_ENHANCE_YOUR_CALM,
};

#endif
