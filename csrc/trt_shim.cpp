// Thin C ABI over the TensorRT runtime API (TRT 10 and 11). The runtime methods are inline in the
// headers and dispatch through vtables; the only library entry point used is the
// createInferRuntime_INTERNAL factory, which Rust finds with dlopen and hands in. So nothing here
// links libnvinfer and the binary starts on machines without TensorRT.
// Every extern "C" function is noexcept, catches everything and returns a status (0 = ok); the last
// error (ours or the ILogger's, severity <= kERROR) is kept per thread for Rust.
#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>

namespace {

thread_local std::string g_last_error;
std::mutex g_logger_mutex;
std::string g_logger_error;

class Logger final : public nvinfer1::ILogger {
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
        if (severity <= Severity::kERROR && msg != nullptr) {
            try {
                std::lock_guard<std::mutex> lock(g_logger_mutex);
                g_logger_error = msg;
            } catch (...) {
            }
        }
    }
};

Logger g_logger;

int fail(char const* what) noexcept {
    try {
        std::lock_guard<std::mutex> lock(g_logger_mutex);
        g_last_error = what;
        if (!g_logger_error.empty()) {
            g_last_error += ": ";
            g_last_error += g_logger_error;
            g_logger_error.clear();
        }
    } catch (...) {
    }
    return 1;
}

template <typename F>
int guarded(char const* what, F&& body) noexcept {
    try {
        return body() ? 0 : fail(what);
    } catch (std::exception const& e) {
        try {
            g_last_error = std::string(what) + ": " + e.what();
        } catch (...) {
        }
        return 2;
    } catch (...) {
        return fail(what);
    }
}

using RuntimeFactory = void* (*)(void* logger, int32_t version);

} // namespace

extern "C" {

/// TensorRT major version of the headers this shim was compiled against.
int32_t dvt_trt_header_major(void) noexcept { return NV_TENSORRT_MAJOR; }

/// Full version of the headers (major*10000 + minor*100 + patch, like getInferLibVersion).
int32_t dvt_trt_header_version(void) noexcept {
    return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
}

/// The last error on this thread (empty when none); valid until the next shim call.
char const* dvt_trt_last_error(void) noexcept { return g_last_error.c_str(); }

/// Creates an IRuntime through the dlopened factory. The caller has checked the library's major
/// version and that CUDA works.
int dvt_trt_runtime_create(void* factory, void** out) noexcept {
    return guarded("createInferRuntime", [&] {
        *out = nullptr;
        if (factory == nullptr) return false;
        auto make = reinterpret_cast<RuntimeFactory>(factory);
        *out = make(&g_logger, NV_TENSORRT_VERSION);
        return *out != nullptr;
    });
}

void dvt_trt_runtime_destroy(void* runtime) noexcept {
    try {
        delete static_cast<nvinfer1::IRuntime*>(runtime);
    } catch (...) {
    }
}

/// Deserializes a plan into an engine.
int dvt_trt_engine_create(void* runtime, void const* plan, size_t size, void** out) noexcept {
    return guarded("deserializeCudaEngine", [&] {
        *out = static_cast<nvinfer1::IRuntime*>(runtime)->deserializeCudaEngine(plan, size);
        return *out != nullptr;
    });
}

void dvt_trt_engine_destroy(void* engine) noexcept {
    try {
        delete static_cast<nvinfer1::ICudaEngine*>(engine);
    } catch (...) {
    }
}

/// Number of I/O tensors of the engine.
int dvt_trt_engine_num_io(void* engine, int32_t* out) noexcept {
    return guarded("getNbIOTensors", [&] {
        *out = static_cast<nvinfer1::ICudaEngine*>(engine)->getNbIOTensors();
        return *out >= 0;
    });
}

/// Describes I/O tensor `index`: name (owned by the engine), mode (1 input, 2 output), dtype (the
/// nvinfer1::DataType value), rank and dims (-1 = dynamic; at most 8 written).
int dvt_trt_engine_io(void* engine, int32_t index, char const** name, int32_t* mode, int32_t* dtype,
                      int32_t* rank, int64_t* dims) noexcept {
    return guarded("I/O tensor query", [&] {
        auto* e = static_cast<nvinfer1::ICudaEngine*>(engine);
        char const* n = e->getIOTensorName(index);
        if (n == nullptr) return false;
        *name = n;
        *mode = static_cast<int32_t>(e->getTensorIOMode(n));
        *dtype = static_cast<int32_t>(e->getTensorDataType(n));
        nvinfer1::Dims d = e->getTensorShape(n);
        if (d.nbDims < 0 || d.nbDims > 8) return false;
        *rank = d.nbDims;
        for (int32_t i = 0; i < d.nbDims; ++i) dims[i] = d.d[i];
        return true;
    });
}

int dvt_trt_context_create(void* engine, void** out) noexcept {
    return guarded("createExecutionContext", [&] {
        *out = static_cast<nvinfer1::ICudaEngine*>(engine)->createExecutionContext();
        return *out != nullptr;
    });
}

void dvt_trt_context_destroy(void* context) noexcept {
    try {
        delete static_cast<nvinfer1::IExecutionContext*>(context);
    } catch (...) {
    }
}

/// Sets the runtime shape of an input tensor.
int dvt_trt_set_input_shape(void* context, char const* name, int32_t rank, int64_t const* dims) noexcept {
    return guarded("setInputShape", [&] {
        if (rank < 0 || rank > nvinfer1::Dims::MAX_DIMS) return false;
        nvinfer1::Dims d{};
        d.nbDims = rank;
        for (int32_t i = 0; i < rank; ++i) d.d[i] = dims[i];
        return static_cast<nvinfer1::IExecutionContext*>(context)->setInputShape(name, d);
    });
}

/// Binds a device address to a tensor.
int dvt_trt_set_tensor_address(void* context, char const* name, void* address) noexcept {
    return guarded("setTensorAddress", [&] {
        return static_cast<nvinfer1::IExecutionContext*>(context)->setTensorAddress(name, address);
    });
}

/// Enqueues the context on a CUDA stream (a CUstream, which is the same type as cudaStream_t).
int dvt_trt_enqueue(void* context, void* stream) noexcept {
    return guarded("enqueueV3", [&] {
        return static_cast<nvinfer1::IExecutionContext*>(context)->enqueueV3(
            static_cast<cudaStream_t>(stream));
    });
}

} // extern "C"
