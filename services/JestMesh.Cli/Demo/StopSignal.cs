using System.Runtime.InteropServices;

namespace JestMesh.Cli.Demo;

/// <summary>
/// A token cancelled by SIGINT or SIGTERM (or the caller's token), for the foreground commands that
/// stop cleanly on either (`up`, `chaos`). Disposing it removes the signal handlers, then the token.
/// </summary>
internal sealed class StopSignal : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly PosixSignalRegistration[] _registrations;

    private StopSignal(CancellationToken outer)
    {
        _source = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM }.Select(s => PosixSignalRegistration.Create(s, OnSignal))];
    }

    public CancellationToken Token => _source.Token;

    public bool IsCancellationRequested => _source.IsCancellationRequested;

    public static StopSignal Listen(CancellationToken outer) => new(outer);

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        try
        {
            _source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // A signal handled after the command had stopped and disposed the source (a second Ctrl-C, or one the
            // runtime dispatched just before the registration was disposed): there is nothing left to stop.
        }
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
        _source.Dispose();
    }
}
