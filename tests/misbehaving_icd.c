/* misbehaving_icd — a Vulkan driver (ICD) with just enough of an instance for vk_alloc_audit's
 * `instance` workload, which breaks the host-memory rules on purpose, on every run, so that the
 * tests can check what the tool makes of a driver like that. MISBEHAVING_ICD in the environment
 * chooses:
 *   violate  vkCreateInstance frees two pointers it never allocated (on its stack)
 *   leak     vkCreateInstance allocates a block it never frees
 *   (unset)  it behaves
 * Its instance and the one physical device are allocated through the application's callbacks
 * (the instance) or static (the device). */
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_icd.h>
#include <vulkan/vulkan.h>

struct icd_instance {
  uintptr_t loader_magic; /* dispatchable: the loader writes its table here */
  VkAllocationCallbacks callbacks;
};

static struct { uintptr_t loader_magic; } physical_device = {ICD_LOADER_MAGIC};

static int misbehaves(const char *how) {
  const char *chosen = getenv("MISBEHAVING_ICD");
  return chosen != NULL && strcmp(chosen, how) == 0;
}

static VKAPI_ATTR VkResult VKAPI_CALL enumerate_instance_extensions(const char *layer,
                                                                    uint32_t *count,
                                                                    VkExtensionProperties *out) {
  (void)layer, (void)out;
  *count = 0;
  return VK_SUCCESS;
}

static VKAPI_ATTR VkResult VKAPI_CALL enumerate_instance_version(uint32_t *version) {
  *version = VK_API_VERSION_1_1;
  return VK_SUCCESS;
}

static VKAPI_ATTR VkResult VKAPI_CALL create_instance(const VkInstanceCreateInfo *info,
                                                      const VkAllocationCallbacks *callbacks,
                                                      VkInstance *out) {
  (void)info;
  if (callbacks == NULL) return VK_ERROR_INITIALIZATION_FAILED; /* the tool always passes them */
  struct icd_instance *instance = callbacks->pfnAllocation(callbacks->pUserData, sizeof *instance,
                                                           8, VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE);
  if (instance == NULL) return VK_ERROR_OUT_OF_HOST_MEMORY;
  instance->loader_magic = ICD_LOADER_MAGIC;
  instance->callbacks = *callbacks;
  if (misbehaves("violate")) {
    char not_a_block[2];
    callbacks->pfnFree(callbacks->pUserData, &not_a_block[0]);
    callbacks->pfnFree(callbacks->pUserData, &not_a_block[1]);
  }
  if (misbehaves("leak") && callbacks->pfnAllocation(callbacks->pUserData, 100, 8,
                                                     VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE) == NULL) {
    callbacks->pfnFree(callbacks->pUserData, instance);
    return VK_ERROR_OUT_OF_HOST_MEMORY;
  }
  *out = (VkInstance)instance;
  return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL destroy_instance(VkInstance handle,
                                                   const VkAllocationCallbacks *callbacks) {
  struct icd_instance *instance = (struct icd_instance *)handle;
  (void)callbacks;
  if (instance != NULL) instance->callbacks.pfnFree(instance->callbacks.pUserData, instance);
}

static VKAPI_ATTR VkResult VKAPI_CALL enumerate_physical_devices(VkInstance instance,
                                                                 uint32_t *count,
                                                                 VkPhysicalDevice *out) {
  (void)instance;
  if (out == NULL) {
    *count = 1;
    return VK_SUCCESS;
  }
  if (*count == 0) return VK_INCOMPLETE;
  *count = 1;
  out[0] = (VkPhysicalDevice)&physical_device;
  return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL get_properties(VkPhysicalDevice device,
                                                 VkPhysicalDeviceProperties *out) {
  (void)device;
  memset(out, 0, sizeof *out);
  out->apiVersion = VK_API_VERSION_1_1;
  out->deviceType = VK_PHYSICAL_DEVICE_TYPE_CPU;
  strcpy(out->deviceName, "misbehaving device");
}

static VKAPI_ATTR void VKAPI_CALL get_properties2(VkPhysicalDevice device,
                                                  VkPhysicalDeviceProperties2 *out) {
  get_properties(device, &out->properties);
  for (VkBaseOutStructure *next = out->pNext; next != NULL; next = next->pNext) {
    if (next->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES) {
      VkPhysicalDeviceDriverProperties *driver = (VkPhysicalDeviceDriverProperties *)next;
      strcpy(driver->driverName, "misbehaving_icd");
      strcpy(driver->driverInfo, "test");
    }
  }
}

static VKAPI_ATTR void VKAPI_CALL get_queue_families(VkPhysicalDevice device, uint32_t *count,
                                                     VkQueueFamilyProperties *out) {
  (void)device;
  *count = 1;
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  out->queueFlags = VK_QUEUE_COMPUTE_BIT;
  out->queueCount = 1;
}

static VKAPI_ATTR void VKAPI_CALL get_memory_properties(VkPhysicalDevice device,
                                                        VkPhysicalDeviceMemoryProperties *out) {
  (void)device;
  memset(out, 0, sizeof *out);
}

static VKAPI_ATTR VkResult VKAPI_CALL enumerate_device_extensions(VkPhysicalDevice device,
                                                                  const char *layer,
                                                                  uint32_t *count,
                                                                  VkExtensionProperties *out) {
  (void)device, (void)layer, (void)out;
  *count = 0;
  return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL get_features(VkPhysicalDevice device,
                                               VkPhysicalDeviceFeatures *out) {
  (void)device;
  memset(out, 0, sizeof *out);
}

/* The loader takes a driver only with these too (the `instance` workload never calls them). */
static VKAPI_ATTR void VKAPI_CALL get_format_properties(VkPhysicalDevice device, VkFormat format,
                                                        VkFormatProperties *out) {
  (void)device, (void)format;
  memset(out, 0, sizeof *out);
}

static VKAPI_ATTR VkResult VKAPI_CALL get_image_format_properties(
    VkPhysicalDevice device, VkFormat format, VkImageType type, VkImageTiling tiling,
    VkImageUsageFlags usage, VkImageCreateFlags flags, VkImageFormatProperties *out) {
  (void)device, (void)format, (void)type, (void)tiling, (void)usage, (void)flags, (void)out;
  return VK_ERROR_FORMAT_NOT_SUPPORTED;
}

static VKAPI_ATTR void VKAPI_CALL get_sparse_image_format_properties(
    VkPhysicalDevice device, VkFormat format, VkImageType type, VkSampleCountFlagBits samples,
    VkImageUsageFlags usage, VkImageTiling tiling, uint32_t *count,
    VkSparseImageFormatProperties *out) {
  (void)device, (void)format, (void)type, (void)samples, (void)usage, (void)tiling, (void)out;
  *count = 0;
}

static VKAPI_ATTR VkResult VKAPI_CALL create_device(VkPhysicalDevice device,
                                                    const VkDeviceCreateInfo *info,
                                                    const VkAllocationCallbacks *callbacks,
                                                    VkDevice *out) {
  (void)device, (void)info, (void)callbacks, (void)out;
  return VK_ERROR_INITIALIZATION_FAILED;
}

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL get_device_proc_addr(VkDevice device,
                                                                     const char *name) {
  (void)device, (void)name;
  return NULL;
}

VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vk_icdGetInstanceProcAddr(VkInstance instance,
                                                                   const char *name);
VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vk_icdGetInstanceProcAddr(VkInstance instance,
                                                                   const char *name) {
  static const struct {
    const char *name;
    PFN_vkVoidFunction function;
  } functions[] = {
      {"vkEnumerateInstanceExtensionProperties", (PFN_vkVoidFunction)enumerate_instance_extensions},
      {"vkEnumerateInstanceVersion", (PFN_vkVoidFunction)enumerate_instance_version},
      {"vkCreateInstance", (PFN_vkVoidFunction)create_instance},
      {"vkDestroyInstance", (PFN_vkVoidFunction)destroy_instance},
      {"vkEnumeratePhysicalDevices", (PFN_vkVoidFunction)enumerate_physical_devices},
      {"vkGetPhysicalDeviceProperties", (PFN_vkVoidFunction)get_properties},
      {"vkGetPhysicalDeviceProperties2", (PFN_vkVoidFunction)get_properties2},
      {"vkGetPhysicalDeviceProperties2KHR", (PFN_vkVoidFunction)get_properties2},
      {"vkGetPhysicalDeviceQueueFamilyProperties", (PFN_vkVoidFunction)get_queue_families},
      {"vkGetPhysicalDeviceMemoryProperties", (PFN_vkVoidFunction)get_memory_properties},
      {"vkEnumerateDeviceExtensionProperties", (PFN_vkVoidFunction)enumerate_device_extensions},
      {"vkGetPhysicalDeviceFeatures", (PFN_vkVoidFunction)get_features},
      {"vkGetPhysicalDeviceFormatProperties", (PFN_vkVoidFunction)get_format_properties},
      {"vkGetPhysicalDeviceImageFormatProperties", (PFN_vkVoidFunction)get_image_format_properties},
      {"vkGetPhysicalDeviceSparseImageFormatProperties",
       (PFN_vkVoidFunction)get_sparse_image_format_properties},
      {"vkCreateDevice", (PFN_vkVoidFunction)create_device},
      {"vkGetDeviceProcAddr", (PFN_vkVoidFunction)get_device_proc_addr},
  };
  (void)instance;
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; ++i) {
    if (strcmp(name, functions[i].name) == 0) return functions[i].function;
  }
  return NULL;
}

VKAPI_ATTR VkResult VKAPI_CALL vk_icdNegotiateLoaderICDInterfaceVersion(uint32_t *version);
VKAPI_ATTR VkResult VKAPI_CALL vk_icdNegotiateLoaderICDInterfaceVersion(uint32_t *version) {
  if (*version > 5) *version = 5;
  return VK_SUCCESS;
}
