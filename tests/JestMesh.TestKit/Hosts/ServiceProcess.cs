using System.Diagnostics;
using Grpc.Health.V1;
using Grpc.Net.Client;
using JestMesh.Messaging;
using Xunit;

namespace JestMesh.TestKit;

/// <summary>
/// A service host as its own process, as deployed (the Release build next to the solution), configured
/// only through environment variables: what a test SIGKILLs to see what a crash leaves behind.
/// </summary>
public sealed class ServiceProcess : IDisposable
{
    private readonly Process _process;

    private ServiceProcess(Process process, string name, int port)
    {
        _process = process;
        Name = name;
        Port = port;
    }

    public string Name { get; }

    /// <summary>Loopback port of its HTTP/2 endpoint (gRPC and health).</summary>
    public int Port { get; }

    public string Address => $"http://127.0.0.1:{Port}";

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Starts <paramref name="project"/> (e.g. JestMesh.Selection) with the broker settings of <paramref name="messaging"/>
    /// and <paramref name="settings"/> (configuration keys, ':' or '__'), listening on a free loopback port.
    /// </summary>
    public static ServiceProcess Start(string project, MessagingOptions messaging, IDictionary<string, string?>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(messaging);
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "JestMesh.sln")))
        {
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no JestMesh.sln above the test directory.");
        }
        var bin = Path.Combine(root, "services", project, "bin", "Release", "net10.0");
        var port = ServiceHosts.FreePort();
        var start = new ProcessStartInfo("dotnet", [Path.Combine(bin, project + ".dll")])
        {
            WorkingDirectory = bin,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in ServiceHosts.Settings(messaging).Concat(settings ?? new Dictionary<string, string?>()))
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ServiceProcess(process, project, port);
    }

    /// <summary>Waits until its gRPC readiness check serves (failing at once if the process exited).</summary>
    public async Task WaitReadyAsync(TimeSpan deadline)
    {
        using var channel = GrpcChannel.ForAddress(Address);
        var health = new Health.HealthClient(channel);
        await Eventually.WaitUntilAsync(async () =>
        {
            Assert.False(_process.HasExited, $"{Name} exited with {(_process.HasExited ? _process.ExitCode : 0)}");
            try
            {
                return (await health.CheckAsync(new HealthCheckRequest { Service = "readiness" })).Status == HealthCheckResponse.Types.ServingStatus.Serving;
            }
            catch (Grpc.Core.RpcException)
            {
                return false;
            }
        }, deadline, $"{Name} to be ready");
    }

    /// <summary>Waits for the process to exit by itself within <paramref name="deadline"/> and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Name} did not exit within {deadline.TotalSeconds:0} s.");
        }
        return _process.ExitCode;
    }

    /// <summary>SIGSTOP: the process runs no more code but keeps its sockets, so the broker keeps its unacked deliveries in its hands until it is killed.</summary>
    public void Suspend()
    {
        using var stop = Process.Start(new ProcessStartInfo("kill", ["-STOP", Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("could not run kill -STOP");
        stop.WaitForExit();
        if (stop.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -STOP {Id} exited {stop.ExitCode}");
        }
    }

    /// <summary>SIGKILL: no shutdown code runs, sockets are closed by the kernel.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }
}
