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

    /// <summary>Longest credential compared at all; any longer one is wrong without reading it.</summary>
    internal const int MaxCredentialChars = 4096;

    private void Check(ServerCallContext context)
    {
        if (context.Method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            return;
        }
        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null)
        {
            throw Unauthenticated("missing 'authorization: Bearer <api key>' metadata.");
        }
        var space = header.IndexOf(' ', StringComparison.Ordinal);
        var scheme = space < 0 ? header : header[..space];
        if (!scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            throw Unauthenticated($"the 'authorization' scheme is {Protos.ClientText.Quote(scheme)}; this service takes 'Bearer <api key>'.");
        }
        var presented = header[(space + 1)..].Trim();
        if (presented.Length > MaxCredentialChars)
        {
            throw Unauthenticated($"the api key in 'authorization' is {presented.Length} characters, longer than any key of this service.");
        }
        // Constant-time comparison: the time to reject must not reveal how much of the key matched.
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _expected))
        {
            throw Unauthenticated("the api key in 'authorization' is wrong.");
        }
    }

    private static RpcException Unauthenticated(string message) => new(new Status(StatusCode.Unauthenticated, message));
}
