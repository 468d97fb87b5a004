using System.Runtime.InteropServices;

namespace JestMesh.Models;

/// <summary>Process-wide libtorch settings that only take effect if made before libtorch loads.</summary>
public static class TorchRuntime
{
    /// <summary>The OpenMP variable libtorch's CPU thread pool (libgomp) reads once, when it loads.</summary>
    public const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>
    /// Makes libtorch's OpenMP workers sleep instead of spin while they wait for work (OMP_WAIT_POLICY=PASSIVE), unless
    /// the environment already sets the policy (an operator's choice wins). On a busy machine spinning workers take the
    /// core from the thread that has the work: a learner training step measured 12 ms on a quiet 2-core machine took
    /// 2,060 ms with spinning workers and 40 ms with sleeping ones at load average 12–16 (README, "Threads on a busy machine").
    /// Call it first thing in a process that uses TorchSharp; once libtorch has loaded it changes nothing.
    /// </summary>
    /// <returns>Whether this call set the policy.</returns>
    public static bool PreferPassiveWait()
    {
        if (Environment.GetEnvironmentVariable(WaitPolicyVariable) is { Length: > 0 })
        {
            return false;
        }

        // .NET keeps its own copy of the environment (which child processes inherit); libgomp reads the C library's.
        Environment.SetEnvironmentVariable(WaitPolicyVariable, "PASSIVE");
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _ = NativeMethods.SetEnv(WaitPolicyVariable, "PASSIVE", 0);
        }

        return true;
    }

    private static class NativeMethods
    {
        [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
        internal static extern int SetEnv(string name, string value, int overwrite);
    }
}
