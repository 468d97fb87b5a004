using Grpc.Core;
using Grpc.Core.Interceptors;

namespace JestMesh.Selection;

/// <summary>
/// An interceptor that admits or refuses every call before it runs (by throwing an RpcException from
/// <see cref="Check"/>), whatever the call's shape. Health calls are exempt, so probes need no credential.
/// </summary>
public abstract class CallGate : Interceptor
{
    private const string HealthPrefix = "/grpc.health.v1.Health/";

    /// <summary>Throws an RpcException when the call must not run; health calls never reach it.</summary>
    protected abstract void Check(ServerCallContext context);

    private void Admit(ServerCallContext context)
    {
        if (!context.Method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            Check(context);
        }
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Admit(context);
        return continuation(requestStream, responseStream, context);
    }
}
