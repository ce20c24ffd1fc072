#include "tools/vk_audit_workload.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <string>
#include <vector>

namespace vk_audit {
namespace {

// Keeps every library loaded now (the driver, and what it loaded) loaded until the process
// exits. The loader unloads the driver at vkDestroyInstance: what the driver keeps for the
// life of the process (lavapipe: a block its once-only initialisation allocates with malloc)
// would then be reachable from nowhere, and a leak checker at exit (LeakSanitizer, valgrind)
// would report it as a leak of this program, in frames it can no longer name.
void keep_libraries_loaded() {
  std::vector<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info *info, std::size_t, void *out) {
        if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0')
          static_cast<std::vector<std::string> *>(out)->emplace_back(info->dlpi_name);
        return 0;
      },
      &names);
  for (const std::string &name : names) (void)dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
}

// The built-in compute shader, SPIR-V 1.0 from glslangValidator -V --vn kFillShader (glslang
// 11.12; the build does not need glslang):
//   #version 450
//   layout(local_size_x = 64) in;
//   layout(std430, set = 0, binding = 0) buffer Out { uint values[]; } out_buffer;
//   void main() {
//     uint i = gl_GlobalInvocationID.x;
//     out_buffer.values[i] = 3u * i + 1u;
//   }
constexpr std::uint32_t kFillShader[] = {
    0x07230203, 0x00010000, 0x0008000b, 0x00000020, 0x00000000, 0x00020011, 0x00000001, 0x0006000b,
    0x00000001, 0x4c534c47, 0x6474732e, 0x3035342e, 0x00000000, 0x0003000e, 0x00000000, 0x00000001,
    0x0006000f, 0x00000005, 0x00000004, 0x6e69616d, 0x00000000, 0x0000000b, 0x00060010, 0x00000004,
    0x00000011, 0x00000040, 0x00000001, 0x00000001, 0x00030003, 0x00000002, 0x000001c2, 0x00040005,
    0x00000004, 0x6e69616d, 0x00000000, 0x00030005, 0x00000008, 0x00000069, 0x00080005, 0x0000000b,
    0x475f6c67, 0x61626f6c, 0x766e496c, 0x7461636f, 0x496e6f69, 0x00000044, 0x00030005, 0x00000011,
    0x0074754f, 0x00050006, 0x00000011, 0x00000000, 0x756c6176, 0x00007365, 0x00050005, 0x00000013,
    0x5f74756f, 0x66667562, 0x00007265, 0x00040047, 0x0000000b, 0x0000000b, 0x0000001c, 0x00040047,
    0x00000010, 0x00000006, 0x00000004, 0x00050048, 0x00000011, 0x00000000, 0x00000023, 0x00000000,
    0x00030047, 0x00000011, 0x00000003, 0x00040047, 0x00000013, 0x00000022, 0x00000000, 0x00040047,
    0x00000013, 0x00000021, 0x00000000, 0x00040047, 0x0000001f, 0x0000000b, 0x00000019, 0x00020013,
    0x00000002, 0x00030021, 0x00000003, 0x00000002, 0x00040015, 0x00000006, 0x00000020, 0x00000000,
    0x00040020, 0x00000007, 0x00000007, 0x00000006, 0x00040017, 0x00000009, 0x00000006, 0x00000003,
    0x00040020, 0x0000000a, 0x00000001, 0x00000009, 0x0004003b, 0x0000000a, 0x0000000b, 0x00000001,
    0x0004002b, 0x00000006, 0x0000000c, 0x00000000, 0x00040020, 0x0000000d, 0x00000001, 0x00000006,
    0x0003001d, 0x00000010, 0x00000006, 0x0003001e, 0x00000011, 0x00000010, 0x00040020, 0x00000012,
    0x00000002, 0x00000011, 0x0004003b, 0x00000012, 0x00000013, 0x00000002, 0x00040015, 0x00000014,
    0x00000020, 0x00000001, 0x0004002b, 0x00000014, 0x00000015, 0x00000000, 0x0004002b, 0x00000006,
    0x00000017, 0x00000003, 0x0004002b, 0x00000006, 0x0000001a, 0x00000001, 0x00040020, 0x0000001c,
    0x00000002, 0x00000006, 0x0004002b, 0x00000006, 0x0000001e, 0x00000040, 0x0006002c, 0x00000009,
    0x0000001f, 0x0000001e, 0x0000001a, 0x0000001a, 0x00050036, 0x00000002, 0x00000004, 0x00000000,
    0x00000003, 0x000200f8, 0x00000005, 0x0004003b, 0x00000007, 0x00000008, 0x00000007, 0x00050041,
    0x0000000d, 0x0000000e, 0x0000000b, 0x0000000c, 0x0004003d, 0x00000006, 0x0000000f, 0x0000000e,
    0x0003003e, 0x00000008, 0x0000000f, 0x0004003d, 0x00000006, 0x00000016, 0x00000008, 0x0004003d,
    0x00000006, 0x00000018, 0x00000008, 0x00050084, 0x00000006, 0x00000019, 0x00000017, 0x00000018,
    0x00050080, 0x00000006, 0x0000001b, 0x00000019, 0x0000001a, 0x00060041, 0x0000001c, 0x0000001d,
    0x00000013, 0x00000015, 0x00000016, 0x0003003e, 0x0000001d, 0x0000001b, 0x000100fd, 0x00010038};
constexpr std::uint32_t kInvocations = 64;

constexpr const char *kInstance = "instance";
constexpr const char *kPhysical = "physical device";
constexpr const char *kDevice = "device";
constexpr const char *kObjects = "objects";
constexpr const char *kUse = "use";
constexpr const char *kTeardown = "teardown";

class script {
 public:
  script(const VkAllocationCallbacks *callbacks, workload_observer &observer)
      : cb_(callbacks), obs_(observer) {}

  workload_outcome run(workload_kind kind) {
    bool ok = create_instance() && pick_device();
    if (ok && kind != workload_kind::instance)
      ok = create_device() && (kind != workload_kind::full || (create_objects() && use_objects()));
    out_.completed = ok;
    teardown();
    return out_;
  }

 private:
  // Runs one entry point returning VkResult; on failure records it and returns false.
  template <class F>
  bool step(const char *call, const char *phase, F &&f) {
    obs_.before(call, phase);
    const VkResult r = f();
    obs_.after(call, r);
    if (r == VK_SUCCESS) return true;
    if (out_.failed_call == nullptr) {
      out_.failed_call = call;
      out_.failed_result = r;
    }
    return false;
  }
  // An entry point returning void.
  template <class F>
  void call(const char *name, const char *phase, F &&f) {
    obs_.before(name, phase);
    f();
    obs_.after(name, VK_SUCCESS);
  }
  template <class F>
  void destroy(const char *name, F &&f) {
    obs_.before(name, kTeardown);
    f();
    obs_.after(name, VK_SUCCESS);
    obs_.after_destroy(name);
  }

  bool create_instance() {
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "vk_alloc_audit";
    app.pEngineName = "mesa_alloc";
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    info.pApplicationInfo = &app;
    if (step("vkCreateInstance", kInstance,
             [&] { return vkCreateInstance(&info, cb_, &instance_); })) {
      keep_libraries_loaded();
      return true;
    }
    instance_ = VK_NULL_HANDLE;
    return false;
  }

  bool pick_device() {
    std::uint32_t count = 0;
    if (!step("vkEnumeratePhysicalDevices", kPhysical,
              [&] { return vkEnumeratePhysicalDevices(instance_, &count, nullptr); }))
      return false;
    if (count == 0) {
      out_.failed_call = "vkEnumeratePhysicalDevices (no physical device)";
      out_.failed_result = VK_ERROR_INITIALIZATION_FAILED;
      return false;
    }
    std::vector<VkPhysicalDevice> devices(count);
    if (!step("vkEnumeratePhysicalDevices", kPhysical, [&] {
          const VkResult r = vkEnumeratePhysicalDevices(instance_, &count, devices.data());
          return r == VK_INCOMPLETE ? VK_SUCCESS : r;  // the first device is enough
        }))
      return false;
    physical_ = devices[0];
    VkPhysicalDeviceProperties props;
    call("vkGetPhysicalDeviceProperties", kPhysical,
         [&] { vkGetPhysicalDeviceProperties(physical_, &props); });
    out_.device_name = props.deviceName;
    out_.api_version = props.apiVersion;
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    props2.pNext = &driver;
    call("vkGetPhysicalDeviceProperties2", kPhysical,
         [&] { vkGetPhysicalDeviceProperties2(physical_, &props2); });
    out_.driver_info = std::string(driver.driverName) + " " + driver.driverInfo;
    std::uint32_t families = 0;
    call("vkGetPhysicalDeviceQueueFamilyProperties", kPhysical,
         [&] { vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, nullptr); });
    std::vector<VkQueueFamilyProperties> family_props(families);
    call("vkGetPhysicalDeviceQueueFamilyProperties", kPhysical, [&] {
      vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, family_props.data());
    });
    for (std::uint32_t i = 0; i < families; ++i) {
      if (family_props[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
        family_ = i;
        break;
      }
    }
    call("vkGetPhysicalDeviceMemoryProperties", kPhysical,
         [&] { vkGetPhysicalDeviceMemoryProperties(physical_, &memory_); });
    return true;
  }

  bool create_device() {
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo queue{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    queue.queueFamilyIndex = family_;
    queue.queueCount = 1;
    queue.pQueuePriorities = &priority;
    VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    info.queueCreateInfoCount = 1;
    info.pQueueCreateInfos = &queue;
    if (!step("vkCreateDevice", kDevice,
              [&] { return vkCreateDevice(physical_, &info, cb_, &device_); })) {
      device_ = VK_NULL_HANDLE;
      return false;
    }
    call("vkGetDeviceQueue", kDevice, [&] { vkGetDeviceQueue(device_, family_, 0, &queue_); });
    return true;
  }

  bool memory_type(std::uint32_t bits, VkMemoryPropertyFlags want, std::uint32_t *index) const {
    for (std::uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
      if ((bits & (1u << i)) && (memory_.memoryTypes[i].propertyFlags & want) == want) {
        *index = i;
        return true;
      }
    }
    return false;
  }

  bool allocate_memory(const VkMemoryRequirements &req, VkMemoryPropertyFlags want,
                       VkDeviceMemory *out) {
    VkMemoryAllocateInfo info{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    info.allocationSize = req.size;
    if (!memory_type(req.memoryTypeBits, want, &info.memoryTypeIndex) &&
        !memory_type(req.memoryTypeBits, 0, &info.memoryTypeIndex)) {
      out_.failed_call = "vkAllocateMemory";
      out_.failed_result = VK_ERROR_FEATURE_NOT_PRESENT;
      return false;
    }
    if (step("vkAllocateMemory", kObjects,
             [&] { return vkAllocateMemory(device_, &info, cb_, out); }))
      return true;
    *out = VK_NULL_HANDLE;
    return false;
  }

  template <class Handle, class F>
  bool create(const char *name, Handle *handle, F &&f) {
    if (step(name, kObjects, f)) return true;
    *handle = VK_NULL_HANDLE;
    return false;
  }

  bool create_objects() {
    VkBufferCreateInfo buffer_info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    buffer_info.size = kInvocations * sizeof(std::uint32_t);
    buffer_info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    buffer_info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    if (!create("vkCreateBuffer", &buffer_,
                [&] { return vkCreateBuffer(device_, &buffer_info, cb_, &buffer_); }))
      return false;
    VkMemoryRequirements req;
    call("vkGetBufferMemoryRequirements", kObjects,
         [&] { vkGetBufferMemoryRequirements(device_, buffer_, &req); });
    if (!allocate_memory(req,
                         VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                         &buffer_memory_))
      return false;
    if (!step("vkBindBufferMemory", kObjects,
              [&] { return vkBindBufferMemory(device_, buffer_, buffer_memory_, 0); }))
      return false;

    VkImageCreateInfo image_info{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
    image_info.imageType = VK_IMAGE_TYPE_2D;
    image_info.format = VK_FORMAT_R8G8B8A8_UNORM;
    image_info.extent = {64, 64, 1};
    image_info.mipLevels = 1;
    image_info.arrayLayers = 1;
    image_info.samples = VK_SAMPLE_COUNT_1_BIT;
    image_info.tiling = VK_IMAGE_TILING_OPTIMAL;
    image_info.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_DST_BIT;
    image_info.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
    if (!create("vkCreateImage", &image_,
                [&] { return vkCreateImage(device_, &image_info, cb_, &image_); }))
      return false;
    call("vkGetImageMemoryRequirements", kObjects,
         [&] { vkGetImageMemoryRequirements(device_, image_, &req); });
    if (!allocate_memory(req, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &image_memory_)) return false;
    if (!step("vkBindImageMemory", kObjects,
              [&] { return vkBindImageMemory(device_, image_, image_memory_, 0); }))
      return false;

    VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pool_info.queueFamilyIndex = family_;
    if (!create("vkCreateCommandPool", &command_pool_,
                [&] { return vkCreateCommandPool(device_, &pool_info, cb_, &command_pool_); }))
      return false;
    VkCommandBufferAllocateInfo cmd_info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    cmd_info.commandPool = command_pool_;
    cmd_info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cmd_info.commandBufferCount = 2;
    if (!step("vkAllocateCommandBuffers", kObjects,
              [&] { return vkAllocateCommandBuffers(device_, &cmd_info, command_buffers_); })) {
      command_buffers_[0] = command_buffers_[1] = VK_NULL_HANDLE;
      return false;
    }

    VkDescriptorSetLayoutBinding binding{};
    binding.binding = 0;
    binding.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    binding.descriptorCount = 1;
    binding.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    VkDescriptorSetLayoutCreateInfo layout_info{
        VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    layout_info.bindingCount = 1;
    layout_info.pBindings = &binding;
    if (!create("vkCreateDescriptorSetLayout", &set_layout_, [&] {
          return vkCreateDescriptorSetLayout(device_, &layout_info, cb_, &set_layout_);
        }))
      return false;
    VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
    VkDescriptorPoolCreateInfo dpool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dpool_info.maxSets = 1;
    dpool_info.poolSizeCount = 1;
    dpool_info.pPoolSizes = &pool_size;
    if (!create("vkCreateDescriptorPool", &descriptor_pool_, [&] {
          return vkCreateDescriptorPool(device_, &dpool_info, cb_, &descriptor_pool_);
        }))
      return false;
    VkDescriptorSetAllocateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    set_info.descriptorPool = descriptor_pool_;
    set_info.descriptorSetCount = 1;
    set_info.pSetLayouts = &set_layout_;
    if (!step("vkAllocateDescriptorSets", kObjects,
              [&] { return vkAllocateDescriptorSets(device_, &set_info, &set_); }))
      return false;
    VkDescriptorBufferInfo buffer_desc{buffer_, 0, VK_WHOLE_SIZE};
    VkWriteDescriptorSet write{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    write.dstSet = set_;
    write.descriptorCount = 1;
    write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    write.pBufferInfo = &buffer_desc;
    call("vkUpdateDescriptorSets", kObjects,
         [&] { vkUpdateDescriptorSets(device_, 1, &write, 0, nullptr); });

    VkPipelineLayoutCreateInfo pl_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    pl_info.setLayoutCount = 1;
    pl_info.pSetLayouts = &set_layout_;
    if (!create("vkCreatePipelineLayout", &pipeline_layout_,
                [&] { return vkCreatePipelineLayout(device_, &pl_info, cb_, &pipeline_layout_); }))
      return false;
    VkShaderModuleCreateInfo sm_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    sm_info.codeSize = sizeof(kFillShader);
    sm_info.pCode = kFillShader;
    if (!create("vkCreateShaderModule", &shader_,
                [&] { return vkCreateShaderModule(device_, &sm_info, cb_, &shader_); }))
      return false;
    VkPipelineCacheCreateInfo cache_info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    if (!create("vkCreatePipelineCache", &cache_,
                [&] { return vkCreatePipelineCache(device_, &cache_info, cb_, &cache_); }))
      return false;
    VkComputePipelineCreateInfo cp_info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    cp_info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    cp_info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    cp_info.stage.module = shader_;
    cp_info.stage.pName = "main";
    cp_info.layout = pipeline_layout_;
    return create("vkCreateComputePipelines", &pipeline_, [&] {
      return vkCreateComputePipelines(device_, cache_, 1, &cp_info, cb_, &pipeline_);
    });
  }

  bool use_objects() {
    VkCommandBuffer cmd = command_buffers_[0];
    VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    if (!step("vkBeginCommandBuffer", kUse, [&] { return vkBeginCommandBuffer(cmd, &begin); }))
      return false;
    call("vkCmdBindPipeline", kUse,
         [&] { vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_); });
    call("vkCmdBindDescriptorSets", kUse, [&] {
      vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_layout_, 0, 1, &set_, 0,
                              nullptr);
    });
    call("vkCmdDispatch", kUse, [&] { vkCmdDispatch(cmd, 1, 1, 1); });
    VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    call("vkCmdPipelineBarrier", kUse, [&] {
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                           1, &barrier, 0, nullptr, 0, nullptr);
    });
    if (!step("vkEndCommandBuffer", kUse, [&] { return vkEndCommandBuffer(cmd); })) return false;
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (!step("vkCreateFence", kUse,
              [&] { return vkCreateFence(device_, &fence_info, cb_, &fence_); })) {
      fence_ = VK_NULL_HANDLE;
      return false;
    }
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &cmd;
    if (!step("vkQueueSubmit", kUse, [&] { return vkQueueSubmit(queue_, 1, &submit, fence_); }))
      return false;
    if (!step("vkWaitForFences", kUse,
              [&] { return vkWaitForFences(device_, 1, &fence_, VK_TRUE, 10'000'000'000ull); }))
      return false;
    void *mapped = nullptr;
    if (!step("vkMapMemory", kUse,
              [&] { return vkMapMemory(device_, buffer_memory_, 0, VK_WHOLE_SIZE, 0, &mapped); }))
      return false;
    out_.output_checked = true;
    out_.output_ok = true;
    const auto *values = static_cast<const std::uint32_t *>(mapped);
    for (std::uint32_t i = 0; i < kInvocations; ++i) out_.output_ok &= values[i] == 3 * i + 1;
    call("vkUnmapMemory", kUse, [&] { vkUnmapMemory(device_, buffer_memory_); });
    std::size_t size = 0;
    if (!step("vkGetPipelineCacheData", kUse,
              [&] { return vkGetPipelineCacheData(device_, cache_, &size, nullptr); }))
      return false;
    std::vector<unsigned char> data(size);
    return step("vkGetPipelineCacheData", kUse,
                [&] { return vkGetPipelineCacheData(device_, cache_, &size, data.data()); });
  }

  void teardown() {
    if (device_ != VK_NULL_HANDLE) {
      step("vkDeviceWaitIdle", kTeardown, [&] { return vkDeviceWaitIdle(device_); });
      if (fence_) destroy("vkDestroyFence", [&] { vkDestroyFence(device_, fence_, cb_); });
      if (pipeline_)
        destroy("vkDestroyPipeline", [&] { vkDestroyPipeline(device_, pipeline_, cb_); });
      if (cache_)
        destroy("vkDestroyPipelineCache", [&] { vkDestroyPipelineCache(device_, cache_, cb_); });
      if (shader_)
        destroy("vkDestroyShaderModule", [&] { vkDestroyShaderModule(device_, shader_, cb_); });
      if (pipeline_layout_)
        destroy("vkDestroyPipelineLayout",
                [&] { vkDestroyPipelineLayout(device_, pipeline_layout_, cb_); });
      if (descriptor_pool_)
        destroy("vkDestroyDescriptorPool",
                [&] { vkDestroyDescriptorPool(device_, descriptor_pool_, cb_); });
      if (set_layout_)
        destroy("vkDestroyDescriptorSetLayout",
                [&] { vkDestroyDescriptorSetLayout(device_, set_layout_, cb_); });
      if (command_buffers_[0])
        destroy("vkFreeCommandBuffers",
                [&] { vkFreeCommandBuffers(device_, command_pool_, 2, command_buffers_); });
      if (command_pool_)
        destroy("vkDestroyCommandPool", [&] { vkDestroyCommandPool(device_, command_pool_, cb_); });
      if (image_) destroy("vkDestroyImage", [&] { vkDestroyImage(device_, image_, cb_); });
      if (image_memory_)
        destroy("vkFreeMemory", [&] { vkFreeMemory(device_, image_memory_, cb_); });
      if (buffer_) destroy("vkDestroyBuffer", [&] { vkDestroyBuffer(device_, buffer_, cb_); });
      if (buffer_memory_)
        destroy("vkFreeMemory", [&] { vkFreeMemory(device_, buffer_memory_, cb_); });
      destroy("vkDestroyDevice", [&] { vkDestroyDevice(device_, cb_); });
    }
    if (instance_ != VK_NULL_HANDLE)
      destroy("vkDestroyInstance", [&] { vkDestroyInstance(instance_, cb_); });
  }

  const VkAllocationCallbacks *cb_;
  workload_observer &obs_;
  workload_outcome out_;

  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_{};
  std::uint32_t family_ = 0;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory buffer_memory_ = VK_NULL_HANDLE;
  VkImage image_ = VK_NULL_HANDLE;
  VkDeviceMemory image_memory_ = VK_NULL_HANDLE;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer command_buffers_[2] = {};
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  VkDescriptorSet set_ = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
  VkShaderModule shader_ = VK_NULL_HANDLE;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
};

}  // namespace

const char *workload_name(workload_kind kind) {
  switch (kind) {
    case workload_kind::instance:
      return "instance";
    case workload_kind::device:
      return "device";
    case workload_kind::full:
      return "full";
  }
  return "?";
}

bool parse_workload(const std::string &name, workload_kind *kind) {
  for (workload_kind k : {workload_kind::instance, workload_kind::device, workload_kind::full}) {
    if (name == workload_name(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

workload_outcome run_workload(workload_kind kind, const VkAllocationCallbacks *callbacks,
                              workload_observer &observer) {
  script s(callbacks, observer);
  return s.run(kind);
}

std::string result_name(VkResult result) {
  switch (result) {
#define NAME(r) \
  case r:       \
    return #r;
    NAME(VK_SUCCESS)
    NAME(VK_NOT_READY)
    NAME(VK_TIMEOUT)
    NAME(VK_INCOMPLETE)
    NAME(VK_ERROR_OUT_OF_HOST_MEMORY)
    NAME(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    NAME(VK_ERROR_INITIALIZATION_FAILED)
    NAME(VK_ERROR_DEVICE_LOST)
    NAME(VK_ERROR_MEMORY_MAP_FAILED)
    NAME(VK_ERROR_LAYER_NOT_PRESENT)
    NAME(VK_ERROR_EXTENSION_NOT_PRESENT)
    NAME(VK_ERROR_FEATURE_NOT_PRESENT)
    NAME(VK_ERROR_INCOMPATIBLE_DRIVER)
    NAME(VK_ERROR_TOO_MANY_OBJECTS)
    NAME(VK_ERROR_FORMAT_NOT_SUPPORTED)
    NAME(VK_ERROR_FRAGMENTED_POOL)
    NAME(VK_ERROR_UNKNOWN)
    NAME(VK_ERROR_OUT_OF_POOL_MEMORY)
    NAME(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    NAME(VK_ERROR_FRAGMENTATION)
    NAME(VK_PIPELINE_COMPILE_REQUIRED)
#undef NAME
    default:
      return "VkResult(" + std::to_string(static_cast<int>(result)) + ")";
  }
}

}  // namespace vk_audit
