/* com.m1prep.sample.a: a kext that publishes a service to the kernel. It reaches the kernel only
 * through imports (kpi_log, kpi_register_service, kpi_darwin_version) that the collection's chained
 * fixups resolve, and the kernel reaches it only through its kmod_info and the service pointer. */
#include "kpi.h"

#define BUNDLE_ID "com.m1prep.sample.a"

static uint32_t sample_service(uint32_t arg) { return (arg ^ 0x4d31u) + 1; }

static kern_return_t sample_a_start(kmod_info_t *ki, void *data) {
	(void)data;
	KPI(kpi_log)("%s: hello from the kext, kernel Darwin %s\n", ki->name, KPI(kpi_darwin_version)());
	KPI(kpi_register_service)(BUNDLE_ID, sample_service);
	return KERN_SUCCESS;
}

static kern_return_t sample_a_stop(kmod_info_t *ki, void *data) {
	(void)ki, (void)data;
	return KERN_SUCCESS;
}

kmod_info_t kmod_info = {
	.info_version = 1,
	.name = BUNDLE_ID,
	.version = "1.0.0",
	.start = sample_a_start,
	.stop = sample_a_stop,
};
