using System.Diagnostics;
using System.Globalization;

namespace JestMesh.Cli.Tests;

/// <summary>scripts/make-reference-bundle.py and PyTorch checks, run with Debian's python3-torch (scripts/test.sh installs it).</summary>
internal static class BundleScript
{
    public const string Python = "/usr/bin/python3";
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(5);

    /// <summary>Writes a bundle to <paramref name="output"/> from the shards in <paramref name="data"/> with the script's <paramref name="args"/>.</summary>
    public static string Make(string data, string output, params string[] args)
    {
        Run(Python, [Path, "--data", data, "--out", output, .. args]);
        return output;
    }

    /// <summary>Runs <paramref name="code"/> (written to <paramref name="directory"/>/check.py) with <paramref name="args"/>; returns its stdout.</summary>
    public static string RunPython(string directory, string code, params string[] args)
    {
        var file = System.IO.Path.Combine(directory, "check.py");
        File.WriteAllText(file, code);
        return Run(Python, [file, .. args]);
    }

    /// <summary>Runs <paramref name="exe"/> to completion within the deadline; a non-zero exit fails the test with its stderr.</summary>
    public static string Run(string exe, string[] args)
    {
        var info = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Deadline))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{exe} {string.Join(' ', args)} did not finish within {Deadline}");
        }
        Assert.True(process.ExitCode == 0, string.Create(CultureInfo.InvariantCulture, $"{exe} {string.Join(' ', args)} exited {process.ExitCode}: {stderr.Result}"));
        return stdout.Result;
    }

    /// <summary>scripts/make-reference-bundle.py of this checkout.</summary>
    public static string Path => System.IO.Path.Combine(Root, "scripts", "make-reference-bundle.py");

    private static string Root
    {
        get
        {
            var root = AppContext.BaseDirectory;
            while (!File.Exists(System.IO.Path.Combine(root, "JestMesh.sln")))
            {
                root = System.IO.Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no JestMesh.sln above the test directory.");
            }
            return root;
        }
    }
}
