using System.Diagnostics;

namespace JestMesh.Cli.Demo;

/// <summary>
/// A process the demo started: output goes to a log file (and to line callbacks); disposing it kills the
/// process and its children, so Ctrl-C or a failure leaves nothing running.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly object _gate = new();
    private readonly List<Action<string>> _listeners = [];
    private readonly Queue<string> _tail = new();

    private ChildProcess(string name, Process process, StreamWriter log)
    {
        Name = name;
        _process = process;
        _log = log;
    }

    public string Name { get; }

    public string LogPath { get; private init; } = "";

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>How it was started: <see cref="Restart"/> starts it again the same way.</summary>
    private (string FileName, string[] Arguments, string WorkingDirectory, IReadOnlyDictionary<string, string> Environment) _spec;

    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment, string logPath) =>
        Start(name, fileName, [.. arguments], workingDirectory, environment, logPath, append: false);

    /// <summary>A new process started as this one was (same program, arguments, environment), its output appended to the same log.</summary>
    public ChildProcess Restart() => Start(Name, _spec.FileName, _spec.Arguments, _spec.WorkingDirectory, _spec.Environment, LogPath, append: true);

    /// <summary>SIGKILL to the process and its children (no shutdown code runs), then waits until it is gone.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync(cancellationToken);
    }

    private static ChildProcess Start(string name, string fileName, string[] arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment, string logPath, bool append)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment)
        {
            info.Environment[k] = v;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var log = new StreamWriter(logPath, append) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process, log) { LogPath = logPath, _spec = (fileName, arguments, workingDirectory, environment) };
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {name} ({fileName}).");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Calls <paramref name="listener"/> with every further line of output.</summary>
    public void OnOutput(Action<string> listener)
    {
        lock (_gate)
        {
            _listeners.Add(listener);
        }
    }

    /// <summary>The last lines of output (for error messages).</summary>
    public string Tail()
    {
        lock (_gate)
        {
            return string.Join(Environment.NewLine, _tail);
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        Action<string>[] listeners;
        lock (_gate)
        {
            _log.WriteLine(line);
            _tail.Enqueue(line);
            if (_tail.Count > 30)
            {
                _tail.Dequeue();
            }

            listeners = [.. _listeners];
        }

        foreach (var l in listeners)
        {
            l(line);
        }
    }

    public Task WaitForExitAsync(CancellationToken cancellationToken) => _process.WaitForExitAsync(cancellationToken);

    /// <summary>SIGTERM (hosts stop gracefully: Scoring saves its cache), then SIGKILL to the whole tree after a grace period.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                using (var term = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false }))
                {
                    term?.WaitForExit(5000);
                }

                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                try
                {
                    await _process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await _process.WaitForExitAsync(timeout.Token);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }
        catch (OperationCanceledException)
        {
            // It would not die within the timeout; nothing more we can do from here.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No kill(1) on this machine: fall back to SIGKILL.
            _process.Kill(entireProcessTree: true);
        }

        _process.WaitForExit(1000);
        lock (_gate)
        {
            _log.Dispose();
        }

        _process.Dispose();
    }
}
