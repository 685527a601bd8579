/*
 * A stand-in for bcryptprimitives.dll, for running Rust Windows test binaries
 * under Wine 8.0, which lacks the DLL.
 *
 * Rust's standard library imports ProcessPrng from bcryptprimitives.dll; without
 * it every Rust .exe dies before main. This DLL exports ProcessPrng, filled by
 * advapi32's RtlGenRandom (exported as SystemFunction036), which Wine has.
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll \
 *        bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom: advapi32!SystemFunction036. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
