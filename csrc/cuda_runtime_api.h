#pragma once
/* Stub: the TensorRT runtime headers only need these two handle types; no CUDA toolkit needed. */
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUstream_st *cudaStream_t;
