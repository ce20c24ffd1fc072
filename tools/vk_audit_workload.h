// vk_audit_workload — the scripted Vulkan workload vk_alloc_audit runs through the callbacks.
//
// What it is for: a small, deterministic, realistic use of a Vulkan driver: create an instance,
// enumerate physical devices, create a device, then (workload "full") a buffer and an image with
// memory, a command pool and command buffers, a descriptor set layout, pool and set, a pipeline
// layout, a compute pipeline from a built-in SPIR-V module and a pipeline cache; record and
// submit a dispatch, check what the shader wrote, read the cache, and destroy everything. Every
// entry point is announced to an observer first (so allocations can be attributed to it) and
// every failure stops the script and tears down what exists, as an application would.
//
// What it costs: on lavapipe about 30 ms for "device" and a few hundred ms for "full" (the
// compute shader goes through LLVM).
//
// Example:
//   my_observer observer;   // implements workload_observer
//   vk_audit::workload_outcome out =
//       vk_audit::run_workload(vk_audit::workload_kind::full, callbacks, observer);
#ifndef TOOLS_VK_AUDIT_WORKLOAD_H_
#define TOOLS_VK_AUDIT_WORKLOAD_H_

#include <vulkan/vulkan_core.h>

#include <cstdint>
#include <string>

namespace vk_audit {

enum class workload_kind { instance, device, full };

// "instance", "device", "full"; parse returns false for anything else.
const char *workload_name(workload_kind kind);
bool parse_workload(const std::string &name, workload_kind *kind);

class workload_observer {
 public:
  // Before each Vulkan entry point; `call` and `phase` are string literals.
  virtual void before(const char *call, const char *phase) = 0;
  // After it returned (VK_SUCCESS for entry points returning void).
  virtual void after(const char *call, VkResult result) = 0;
  // After a vkDestroy*/vkFree* returned.
  virtual void after_destroy(const char *call) = 0;

 protected:
  ~workload_observer() = default;
};

struct workload_outcome {
  bool completed = false;             // every step ran and succeeded
  const char *failed_call = nullptr;  // the first entry point that did not return VK_SUCCESS
  VkResult failed_result = VK_SUCCESS;
  bool output_checked = false;  // the compute shader's output was read back
  bool output_ok = false;       // ... and was right
  std::string device_name;
  std::string driver_info;
  std::uint32_t api_version = 0;
};

workload_outcome run_workload(workload_kind kind, const VkAllocationCallbacks *callbacks,
                              workload_observer &observer);

// "VK_ERROR_OUT_OF_HOST_MEMORY", ... ("VkResult(<n>)" for unknown values).
std::string result_name(VkResult result);

}  // namespace vk_audit

#endif  // TOOLS_VK_AUDIT_WORKLOAD_H_
