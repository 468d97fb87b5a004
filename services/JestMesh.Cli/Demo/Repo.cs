using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using JestMesh.Learning;

namespace JestMesh.Cli.Demo;

/// <summary>The checkout the CLI runs from: where the scripts, the service projects and their builds are.</summary>
internal sealed class Repo(string root)
{
    public string Root { get; } = root;

    public string Script(string name) => Path.Combine(Root, "scripts", name);

    /// <summary>Finds the checkout above the current directory or the CLI's own files.</summary>
    public static Repo Locate()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "JestMesh.sln")) && File.Exists(Path.Combine(dir.FullName, "scripts", "broker.sh")))
                {
                    return new Repo(dir.FullName);
                }
            }
        }

        throw new InvalidOperationException("could not find the JestMesh checkout (JestMesh.sln and scripts/broker.sh) above the current directory: run ./jestmesh demo from the repository.");
    }

    public bool HasProject(string name) => File.Exists(Project(name));

    public string Project(string name) => Path.Combine(Root, "services", name, name + ".csproj");

    public string HostDll(string name) => Path.Combine(Root, "services", name, "bin", "Release", "net10.0", name + ".dll");

    /// <summary>Builds the service hosts whose build is missing or older than any source (Release, their usual bin folder).</summary>
    public async Task EnsureBuiltAsync(IEnumerable<string> hosts, Action<string> say, CancellationToken cancellationToken)
    {
        var all = hosts.ToList();
        foreach (var host in all)
        {
            var dll = HostDll(host);
            // A host depends on its own sources, the libraries and the protos: not on the CLI or the other hosts.
            if (File.Exists(dll) && File.GetLastWriteTimeUtc(dll) >= NewestSource(all.Where(h => h != host).Append("JestMesh.Cli")))
            {
                continue;
            }

            say($"building {host}...");
            var code = await RunAsync("dotnet", ["build", Project(host), "-c", "Release", "--nologo", "-v", "quiet", "-clp:ErrorsOnly;NoSummary"], Root, cancellationToken);
            if (code != 0)
            {
                throw new InvalidOperationException($"`dotnet build {Project(host)} -c Release` failed (exit {code}); run it to see the errors.");
            }

            // An up-to-date build does not touch the dll; mark it so the next start skips the build.
            File.SetLastWriteTimeUtc(dll, DateTime.UtcNow);
        }
    }

    private DateTime NewestSource(IEnumerable<string> excludedProjects)
    {
        var newest = DateTime.MinValue;
        var excluded = excludedProjects.Select(p => Path.Combine(Root, "services", p) + "/").ToList();
        foreach (var top in new[] { "services", "protos" })
        {
            foreach (var f in Directory.EnumerateFiles(Path.Combine(Root, top), "*", SearchOption.AllDirectories))
            {
                if (excluded.Any(e => f.StartsWith(e, StringComparison.Ordinal)))
                {
                    continue;
                }

                if (f.Contains("/bin/", StringComparison.Ordinal) || f.Contains("/obj/", StringComparison.Ordinal))
                {
                    continue;
                }

                var t = File.GetLastWriteTimeUtc(f);
                if (t > newest)
                {
                    newest = t;
                }
            }
        }

        foreach (var f in Directory.EnumerateFiles(Root, "Directory.*"))
        {
            var t = File.GetLastWriteTimeUtc(f);
            if (t > newest)
            {
                newest = t;
            }
        }

        return newest;
    }

    /// <summary>Runs a command to completion with its output passed through to stderr; returns the exit code.</summary>
    public static async Task<int> RunAsync(string file, IEnumerable<string> arguments, string workingDirectory, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? environment = null, Action<string>? onLine = null)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { (onLine ?? Console.Error.WriteLine)(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return process.ExitCode;
    }

    /// <summary>A TCP port on loopback that is free right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Whether a process could listen on <paramref name="port"/> on loopback right now.</summary>
    public static bool PortFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static async Task<bool> PortOpenAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>Whether a reference checkpoint on disk can be reused: its weights' SHA-256 and its data settings must match.</summary>
internal static class ReferenceCheckpoint
{
    /// <summary>Null when <paramref name="directory"/> holds a usable reference for <paramref name="plan"/>; otherwise why not.</summary>
    public static string? WhyNotReusable(string directory, DemoPlan plan)
    {
        var meta = Path.Combine(directory, "metadata.json");
        var model = Path.Combine(directory, "model.bin");
        if (!File.Exists(meta) || !File.Exists(model))
        {
            return $"no checkpoint in {directory}";
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(meta));
        var root = doc.RootElement;
        string Str(string name) => root.TryGetProperty(name, out var v) ? v.ToString() : "";
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(model)));
        if (!string.Equals(Str("sha256"), hash, StringComparison.OrdinalIgnoreCase))
        {
            return $"{model} has SHA-256 {hash[..12]}…, its metadata says {Str("sha256")}";
        }

        var wanted = new Dictionary<string, double> { ["data_seed"] = plan.DataSeed, ["swapped_share"] = plan.SwappedShare, ["curated_size"] = plan.CuratedSize, ["duplicate_share"] = 0 };
        foreach (var (key, value) in wanted)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.Number || Math.Abs(v.GetDouble() - value) > 1e-9)
            {
                return $"{meta} has {key} = {Str(key)}, the demo uses {value}";
            }
        }

        return null;
    }

    /// <summary>The SHA-256 Scoring reports for the reference in <paramref name="directory"/>: a built-in checkpoint's, or a bundle's over all its files.</summary>
    public static string Sha256(string directory)
    {
        if (ReferenceBundle.IsBundle(directory))
        {
            return ReferenceBundle.DirectorySha256(directory);
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "metadata.json")));
        return doc.RootElement.GetProperty("sha256").GetString() ?? "";
    }
}
