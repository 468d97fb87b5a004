using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>Requires "authorization: Bearer KEY" on every RPC except gRPC health; otherwise UNAUTHENTICATED.</summary>
public sealed class ApiKeyInterceptor : Interceptor
{
    private const string HealthPrefix = "/grpc.health.v1.Health/";
    private readonly byte[] _expected;

    public ApiKeyInterceptor(IOptions<SelectionOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _expected = Encoding.UTF8.GetBytes(options.Value.ApiKey);
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (context.Method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            return;
        }
        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing 'authorization: Bearer <api key>' metadata."));
        }
        const string scheme = "Bearer ";
        var presented = header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) ? header[scheme.Length..].Trim() : "";
        // Constant-time comparison: the time to reject must not reveal how much of the key matched.
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _expected))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "the api key in 'authorization' is wrong."));
        }
    }
}
