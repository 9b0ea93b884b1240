//! Hand-written declarations of the parts of Triton's C API (`include/triton/core/`, pinned) that
//! the backend uses. The server defines every `TRITON*` symbol: the dynamic loader resolves them
//! when Triton loads `libtriton_dvt.so`, so nothing links against a Triton library at build time.
//!
//! Keep each declaration on one line per function (`pub fn NAME(` ... `) -> ...;`): the unit
//! test in `api.rs` reads this file and checks every name, parameter count and enum value
//! against the vendored headers.

#![allow(non_camel_case_types, non_snake_case, dead_code)]

use std::ffi::{c_char, c_void};

macro_rules! opaque {
    ($($name:ident),* $(,)?) => {$(
        /// Opaque Triton object (only ever behind a pointer).
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}

opaque!(
    TRITONSERVER_Error,
    TRITONSERVER_Message,
    TRITONSERVER_MetricFamily,
    TRITONSERVER_Metric,
    TRITONSERVER_Parameter,
    TRITONBACKEND_Backend,
    TRITONBACKEND_Model,
    TRITONBACKEND_ModelInstance,
    TRITONBACKEND_Request,
    TRITONBACKEND_Response,
    TRITONBACKEND_Input,
    TRITONBACKEND_Output,
);

/// C enums are `int`-sized.
pub type TRITONSERVER_DataType = u32;
pub const TRITONSERVER_TYPE_UINT8: TRITONSERVER_DataType = 2;
pub const TRITONSERVER_TYPE_INT32: TRITONSERVER_DataType = 8;
pub const TRITONSERVER_TYPE_FP32: TRITONSERVER_DataType = 11;
pub const TRITONSERVER_TYPE_BYTES: TRITONSERVER_DataType = 13;

pub type TRITONSERVER_MemoryType = u32;
pub const TRITONSERVER_MEMORY_CPU: TRITONSERVER_MemoryType = 0;
pub const TRITONSERVER_MEMORY_CPU_PINNED: TRITONSERVER_MemoryType = 1;
pub const TRITONSERVER_MEMORY_GPU: TRITONSERVER_MemoryType = 2;

pub type TRITONSERVER_ParameterType = u32;
pub const TRITONSERVER_PARAMETER_STRING: TRITONSERVER_ParameterType = 0;
pub const TRITONSERVER_PARAMETER_INT: TRITONSERVER_ParameterType = 1;
pub const TRITONSERVER_PARAMETER_BOOL: TRITONSERVER_ParameterType = 2;
pub const TRITONSERVER_PARAMETER_DOUBLE: TRITONSERVER_ParameterType = 3;

pub type TRITONSERVER_InstanceGroupKind = u32;
pub const TRITONSERVER_INSTANCEGROUPKIND_AUTO: TRITONSERVER_InstanceGroupKind = 0;
pub const TRITONSERVER_INSTANCEGROUPKIND_CPU: TRITONSERVER_InstanceGroupKind = 1;
pub const TRITONSERVER_INSTANCEGROUPKIND_GPU: TRITONSERVER_InstanceGroupKind = 2;

pub type TRITONSERVER_LogLevel = u32;
pub const TRITONSERVER_LOG_INFO: TRITONSERVER_LogLevel = 0;
pub const TRITONSERVER_LOG_WARN: TRITONSERVER_LogLevel = 1;
pub const TRITONSERVER_LOG_ERROR: TRITONSERVER_LogLevel = 2;

pub type TRITONSERVER_Error_Code = u32;
pub const TRITONSERVER_ERROR_INTERNAL: TRITONSERVER_Error_Code = 1;
pub const TRITONSERVER_ERROR_INVALID_ARG: TRITONSERVER_Error_Code = 3;
pub const TRITONSERVER_ERROR_UNAVAILABLE: TRITONSERVER_Error_Code = 4;
pub const TRITONSERVER_ERROR_UNSUPPORTED: TRITONSERVER_Error_Code = 5;

pub type TRITONSERVER_MetricKind = u32;
pub const TRITONSERVER_METRIC_KIND_COUNTER: TRITONSERVER_MetricKind = 0;

pub type TRITONBACKEND_ArtifactType = u32;
pub const TRITONBACKEND_ARTIFACT_FILESYSTEM: TRITONBACKEND_ArtifactType = 0;

/// `TRITONSERVER_RequestReleaseFlag`.
pub const TRITONSERVER_REQUEST_RELEASE_ALL: u32 = 1;
/// `TRITONSERVER_ResponseCompleteFlag`.
pub const TRITONSERVER_RESPONSE_COMPLETE_FINAL: u32 = 1;

// One line per declaration (see the module doc), so rustfmt keeps its hands off.
#[rustfmt::skip]
extern "C" {
    // ---- tritonserver.h ----
    pub fn TRITONSERVER_ApiVersion(major: *mut u32, minor: *mut u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_ErrorNew(code: TRITONSERVER_Error_Code, msg: *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_ErrorDelete(error: *mut TRITONSERVER_Error);
    pub fn TRITONSERVER_ErrorMessage(error: *mut TRITONSERVER_Error) -> *const c_char;
    pub fn TRITONSERVER_MessageSerializeToJson(message: *mut TRITONSERVER_Message, base: *mut *const c_char, byte_size: *mut usize) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_MessageDelete(message: *mut TRITONSERVER_Message) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_LogMessage(level: TRITONSERVER_LogLevel, filename: *const c_char, line: i32, msg: *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_ParameterNew(name: *const c_char, kind: TRITONSERVER_ParameterType, value: *const c_void) -> *mut TRITONSERVER_Parameter;
    pub fn TRITONSERVER_ParameterDelete(parameter: *mut TRITONSERVER_Parameter);
    pub fn TRITONSERVER_MetricFamilyNew(family: *mut *mut TRITONSERVER_MetricFamily, kind: TRITONSERVER_MetricKind, name: *const c_char, description: *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_MetricFamilyDelete(family: *mut TRITONSERVER_MetricFamily) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_MetricNew(metric: *mut *mut TRITONSERVER_Metric, family: *mut TRITONSERVER_MetricFamily, labels: *const *const TRITONSERVER_Parameter, label_count: u64) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_MetricDelete(metric: *mut TRITONSERVER_Metric) -> *mut TRITONSERVER_Error;
    pub fn TRITONSERVER_MetricIncrement(metric: *mut TRITONSERVER_Metric, value: f64) -> *mut TRITONSERVER_Error;

    // ---- tritonbackend.h ----
    pub fn TRITONBACKEND_ApiVersion(major: *mut u32, minor: *mut u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_BackendSetState(backend: *mut TRITONBACKEND_Backend, state: *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_BackendState(backend: *mut TRITONBACKEND_Backend, state: *mut *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelName(model: *mut TRITONBACKEND_Model, name: *mut *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelVersion(model: *mut TRITONBACKEND_Model, version: *mut u64) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelRepository(model: *mut TRITONBACKEND_Model, artifact_type: *mut TRITONBACKEND_ArtifactType, location: *mut *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelConfig(model: *mut TRITONBACKEND_Model, config_version: u32, model_config: *mut *mut TRITONSERVER_Message) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelBackend(model: *mut TRITONBACKEND_Model, backend: *mut *mut TRITONBACKEND_Backend) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelState(model: *mut TRITONBACKEND_Model, state: *mut *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelSetState(model: *mut TRITONBACKEND_Model, state: *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceName(instance: *mut TRITONBACKEND_ModelInstance, name: *mut *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceKind(instance: *mut TRITONBACKEND_ModelInstance, kind: *mut TRITONSERVER_InstanceGroupKind) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceDeviceId(instance: *mut TRITONBACKEND_ModelInstance, device_id: *mut i32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceModel(instance: *mut TRITONBACKEND_ModelInstance, model: *mut *mut TRITONBACKEND_Model) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceSetState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceReportStatistics(instance: *mut TRITONBACKEND_ModelInstance, request: *mut TRITONBACKEND_Request, success: bool, exec_start_ns: u64, compute_start_ns: u64, compute_end_ns: u64, exec_end_ns: u64) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ModelInstanceReportBatchStatistics(instance: *mut TRITONBACKEND_ModelInstance, batch_size: u64, exec_start_ns: u64, compute_start_ns: u64, compute_end_ns: u64, exec_end_ns: u64) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestInput(request: *mut TRITONBACKEND_Request, name: *const c_char, input: *mut *mut TRITONBACKEND_Input) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestParameterCount(request: *mut TRITONBACKEND_Request, count: *mut u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestParameter(request: *mut TRITONBACKEND_Request, index: u32, key: *mut *const c_char, kind: *mut TRITONSERVER_ParameterType, vvalue: *mut *const c_void) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestOutputCount(request: *mut TRITONBACKEND_Request, count: *mut u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestOutputName(request: *mut TRITONBACKEND_Request, index: u32, output_name: *mut *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_RequestRelease(request: *mut TRITONBACKEND_Request, release_flags: u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_InputProperties(input: *mut TRITONBACKEND_Input, name: *mut *const c_char, datatype: *mut TRITONSERVER_DataType, shape: *mut *const i64, dims_count: *mut u32, byte_size: *mut u64, buffer_count: *mut u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_InputBuffer(input: *mut TRITONBACKEND_Input, index: u32, buffer: *mut *const c_void, buffer_byte_size: *mut u64, memory_type: *mut TRITONSERVER_MemoryType, memory_type_id: *mut i64) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ResponseNew(response: *mut *mut TRITONBACKEND_Response, request: *mut TRITONBACKEND_Request) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ResponseDelete(response: *mut TRITONBACKEND_Response) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ResponseSetStringParameter(response: *mut TRITONBACKEND_Response, name: *const c_char, value: *const c_char) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ResponseOutput(response: *mut TRITONBACKEND_Response, output: *mut *mut TRITONBACKEND_Output, name: *const c_char, datatype: TRITONSERVER_DataType, shape: *const i64, dims_count: u32) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_ResponseSend(response: *mut TRITONBACKEND_Response, send_flags: u32, error: *mut TRITONSERVER_Error) -> *mut TRITONSERVER_Error;
    pub fn TRITONBACKEND_OutputBuffer(output: *mut TRITONBACKEND_Output, buffer: *mut *mut c_void, buffer_byte_size: u64, memory_type: *mut TRITONSERVER_MemoryType, memory_type_id: *mut i64) -> *mut TRITONSERVER_Error;
}
