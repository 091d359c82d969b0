// transfer_engine._te: the extension module under the transfer_engine package. The
// package's TransferEngine subclasses Engine here and adds what is easier in Python
// (keyword configuration, registering Python buffers).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "engine.h"
#include "gil.h"
#include "status_error.h"
#include "transport/transport_registry.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace te::python {
namespace {

std::string Hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

// wait(): the bytes moved; TransferError for a failed task, TimeoutError when the
// timeout passes first (the transfer goes on and can be waited for again).
uint64_t WaitForResult(TransferFuture& future, std::optional<double> timeout_s) {
  switch (future.Wait(timeout_s)) {
    case WaitResult::kReady:
      break;
    case WaitResult::kTimeout:
      PyErr_SetString(PyExc_TimeoutError, "the transfer did not finish within the timeout");
      throw py::error_already_set();
    case WaitResult::kInterrupted:
      throw py::error_already_set();
  }
  return future.Result();
}

void BindValueTypes(py::module_& m) {
  py::enum_<Permission>(m, "Permission", "What peers may do with a registered buffer.")
      .value("LOCAL_ONLY", Permission::kLocalOnly)
      .value("REMOTE_READ", Permission::kRemoteRead)
      .value("REMOTE_READ_WRITE", Permission::kRemoteReadWrite);

  py::enum_<Request::OpCode>(m, "Opcode", "READ: remote to local; WRITE: local to remote.")
      .value("READ", Request::READ)
      .value("WRITE", Request::WRITE)
      .export_values();

  py::enum_<TransferState>(m, "TransferState")
      .value("PENDING", TransferState::kPending)
      .value("COMPLETED", TransferState::kCompleted)
      .value("FAILED", TransferState::kFailed);

  py::class_<TransferStatus>(m, "TransferStatus", "State of one request of a batch.")
      .def_readonly("state", &TransferStatus::state)
      .def_readonly("transferred_bytes", &TransferStatus::transferred_bytes)
      .def_readonly("error", &TransferStatus::error, "why it failed, code name first")
      .def("__repr__", [](const TransferStatus& s) {
        return std::string("TransferStatus(") + TransferStateName(s.state) + ", " +
               std::to_string(s.transferred_bytes) + " bytes" +
               (s.error.empty() ? "" : ", '" + s.error + "'") + ")";
      });

  py::class_<BufferInfo>(m, "BufferInfo", "A buffer a segment exposes to peers.")
      .def_readonly("base", &BufferInfo::base, "its address in the owner's process")
      .def_readonly("length", &BufferInfo::length)
      .def_readonly("location", &BufferInfo::location)
      .def_readonly("permission", &BufferInfo::permission)
      .def_readonly("shm_name", &BufferInfo::shm_name)
      .def("__repr__", [](const BufferInfo& b) {
        return "BufferInfo(base=" + Hex(b.base) + ", length=" + std::to_string(b.length) + ", " +
               PermissionName(b.permission) + ")";
      });

  py::class_<SegmentInfo>(m, "SegmentInfo")
      .def_readonly("name", &SegmentInfo::name)
      .def_readonly("machine_id", &SegmentInfo::machine_id)
      .def_readonly("transports", &SegmentInfo::transports)
      .def_readonly("buffers", &SegmentInfo::buffers);

  py::class_<Notification>(m, "Notification")
      .def_readonly("sender", &Notification::from, "segment name of the sending engine")
      .def_readonly("message", &Notification::message)
      .def("__repr__", [](const Notification& n) {
        return "Notification(sender='" + n.from + "', message='" + n.message + "')";
      });
}

void BindResources(py::module_& m) {
  py::class_<Buffer, std::shared_ptr<Buffer>>(
      m, "Buffer", py::buffer_protocol(),
      "Registered memory from TransferEngine.allocate. memoryview(buffer) and "
      "numpy.frombuffer(buffer) see it without copying; it is freed once neither it nor "
      "such a view is referenced.")
      .def_buffer([](Buffer& b) {
        return py::buffer_info(b.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.size())}, {1});
      })
      .def_property_readonly("address", &Buffer::address, "start address (for ctypes)")
      .def_property_readonly("size", &Buffer::size)
      .def_property_readonly("shm", &Buffer::shm, "whether it lives in POSIX shared memory")
      .def("__len__", &Buffer::size)
      .def(
          "numpy",
          [](py::object self, py::object dtype) {
            return py::module_::import("numpy").attr("frombuffer")(self, "dtype"_a = dtype);
          },
          "dtype"_a = "uint8", "A numpy array over the buffer (no copy).")
      .def("__repr__", [](const Buffer& b) {
        return "Buffer(address=" + Hex(b.address()) + ", size=" + std::to_string(b.size()) +
               (b.shm() ? ", shm" : "") + ")";
      });

  py::class_<Segment, std::shared_ptr<Segment>>(
      m, "Segment", "An open peer segment (TransferEngine.open_segment).")
      .def_property_readonly("name", &Segment::name)
      .def_property_readonly("handle", &Segment::handle)
      .def("info", &Segment::Info, "The cached descriptor.")
      .def_property_readonly(
          "buffers", [](const Segment& s) { return s.Info().buffers; },
          "The peer's registered buffers, as last fetched.")
      .def("refresh", &Segment::Refresh, "Fetch the descriptor again.")
      .def("close", &Segment::Close)
      .def("__repr__", [](const Segment& s) { return "Segment('" + s.name() + "')"; });

  py::class_<RequestSpec>(m, "Request", "One transfer between local and remote memory.")
      .def(py::init([](Request::OpCode op, std::shared_ptr<Segment> segment, uint64_t local,
                       uint64_t remote, uint64_t length) {
             return RequestSpec{op, std::move(segment), local, remote, length};
           }),
           "op"_a, py::arg("segment").none(false), "local"_a, "remote"_a, "length"_a,
           "local: address in this process; remote: address in the segment's process.")
      .def_readwrite("op", &RequestSpec::opcode)
      .def_readwrite("segment", &RequestSpec::segment)
      .def_readwrite("local", &RequestSpec::local)
      .def_readwrite("remote", &RequestSpec::remote)
      .def_readwrite("length", &RequestSpec::length)
      .def("__repr__", [](const RequestSpec& r) {
        return std::string("Request(") + (r.opcode == Request::READ ? "READ" : "WRITE") +
               ", local=" + Hex(r.local) + ", remote=" + Hex(r.remote) +
               ", length=" + std::to_string(r.length) + ")";
      });

  py::class_<TransferFuture, std::shared_ptr<TransferFuture>>(
      m, "TransferFuture", "A submitted batch (TransferEngine.submit).")
      .def_property_readonly("id", &TransferFuture::id)
      .def("__len__", &TransferFuture::size)
      .def("done", &TransferFuture::Done, "Whether every request ended. Never blocks.")
      .def("wait", &WaitForResult, "timeout"_a = py::none(),
           "Block (GIL released) until every request ended; return the bytes moved. "
           "Raises TransferError for a failed request, TimeoutError after `timeout` s.")
      .def("status", &TransferFuture::Statuses, "A TransferStatus per request.");
}

py::dict HistogramDict(const LatencyHistogram& h) {
  return py::dict("upper_bounds_seconds"_a = h.upper_bounds_seconds, "counts"_a = h.counts,
                  "count"_a = h.count, "sum_seconds"_a = h.sum_seconds);
}

// te::EngineStatistics as nested dicts with the C++ field names: the figures of
// getStatistics() and of the Prometheus endpoint.
py::dict StatisticsDict(const EngineStatistics& s) {
  py::dict transports;
  for (const auto& [name, t] : s.transports) {
    transports[py::str(name)] =
        py::dict("read_bytes"_a = t.read_bytes, "write_bytes"_a = t.write_bytes,
                 "read_requests"_a = t.read_requests, "write_requests"_a = t.write_requests,
                 "failures_by_reason"_a = t.failures_by_reason,
                 "outbound_connections"_a = t.outbound_connections,
                 "inbound_connections"_a = t.inbound_connections,
                 "slice_latency"_a = HistogramDict(t.slice_latency),
                 "batch_latency"_a = HistogramDict(t.batch_latency));
  }
  py::list metadata;
  for (const MetadataOperationCount& m : s.metadata_operations) {
    metadata.append(
        py::dict("operation"_a = m.operation, "result"_a = m.result, "count"_a = m.count));
  }
  return py::dict(
      "bytes_by_transport"_a = s.bytes_by_transport, "retried_slices"_a = s.retried_slices,
      "transports"_a = transports, "slices_in_flight"_a = s.slices_in_flight,
      "open_segments"_a = s.open_segments, "registered_buffers"_a = s.registered_buffers,
      "registered_bytes"_a = s.registered_bytes, "metadata_backend"_a = s.metadata_backend,
      "metadata_operations"_a = metadata, "served_requests"_a = s.served_requests,
      "served_bytes"_a = s.served_bytes, "refusals_by_reason"_a = s.refusals_by_reason);
}

void BindEngine(py::module_& m) {
  py::class_<Engine>(m, "Engine", "The engine; use transfer_engine.TransferEngine.")
      .def(py::init<bool, const std::string&, const std::string&>(), "from_env"_a, "config_file"_a,
           "config_json"_a)
      .def_property_readonly("segment_name", &Engine::segment_name,
                             "the name peers open this engine's segment by")
      .def_property_readonly("rpc_address", &Engine::rpc_address)
      .def_property_readonly("rpc_port", &Engine::rpc_port)
      .def_property_readonly("primary_transport", &Engine::primary_transport,
                             "the transport that carried most bytes so far")
      .def(
          "statistics", [](const Engine& e) { return StatisticsDict(e.Statistics()); },
          "Counters since the engine started, as dicts: what getStatistics() and the "
          "Prometheus endpoint (metrics_port) report.")
      .def("allocate", &Engine::Allocate, "size"_a, "shm"_a = false,
           "permission"_a = Permission::kRemoteReadWrite, "location"_a = "",
           "Allocate and register page-aligned memory (in POSIX shared memory with shm).")
      .def("_register", &Engine::Register, "address"_a, "length"_a, "permission"_a, "location"_a)
      .def("_register_batch", &Engine::RegisterBatch, "addresses"_a, "lengths"_a, "permission"_a,
           "location"_a)
      .def("unregister", &Engine::Unregister, "address"_a,
           "Unregister; waits for peers' copies touching the memory.")
      .def("open_segment", &Engine::OpenSegment, "name"_a)
      .def("submit", &Engine::Submit, "requests"_a,
           "Submit a batch of Requests; returns a TransferFuture.")
      .def("transfer", &Engine::Transfer, "requests"_a,
           "Submit a batch of Requests and wait; returns the bytes moved.")
      .def("notify", &Engine::Notify, "segment"_a, "message"_a,
           "Send a text message to the segment's engine.")
      .def("notifications", &Engine::Notifications, "timeout"_a = 0.0,
           "Take the queued Notifications; with timeout, wait up to that many seconds "
           "for one when none is queued.")
      .def("close", &Engine::Close,
           "Release the engine; it stops when its buffers, segments and transfers are gone.");
}

// The transport table (src/transport/transport_registry.h), one dict per row.
py::list TransportRows() {
  py::list rows;
  for (const TransportEntry& e : TransportTable()) {
    rows.append(py::dict("name"_a = e.name, "reach"_a = TransportReachName(e.reach),
                         "built"_a = e.built, "enabled_by_default"_a = e.enabled_by_default));
  }
  return rows;
}

}  // namespace
}  // namespace te::python

PYBIND11_MODULE(_te, m) {
  m.doc() = "Bindings of the te transfer engine (use the transfer_engine package).";
  te::python::InitGil();
  te::python::RegisterStatusError();
  m.attr("STATUS_CODES") = te::python::StatusCodes();
  te::python::BindValueTypes(m);
  te::python::BindResources(m);
  te::python::BindEngine(m);
  m.def("transports", &te::python::TransportRows,
        "The transport table: a dict per transport (name; reach: 'same process', 'same "
        "host' or 'any host'; built: in this build; enabled_by_default), in order of "
        "preference.");
}
