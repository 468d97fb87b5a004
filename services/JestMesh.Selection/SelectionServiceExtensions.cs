using JestMesh.Messaging;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace JestMesh.Selection;

/// <summary>Wiring of the Selection service (eShop shape: Program.cs stays short).</summary>
public static class SelectionServiceExtensions
{
    /// <summary>Options, broker, batch log, job feeds, the router, gRPC limits, keepalive and the API key.</summary>
    public static IHostApplicationBuilder AddSelectionServices(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        services.AddValidatedOptions<SelectionOptions>(builder.Configuration, SelectionOptions.SectionName);
        services.AddJestMeshMessaging();
        services.AddSingleton<BatchLog>();
        services.AddSingleton<SessionStore>();
        services.AddSingleton<JobFeeds>();
        services.AddSingleton<ErrorMappingInterceptor>();
        services.AddSingleton<ApiKeyInterceptor>();
        services.AddSingleton<ClientCertificateInterceptor>();
        services.AddHostedService<ScoredRouter>();
        services.AddHostedService<IdleSessionEvictor>();
        services.AddHealthChecks()
            .AddReadinessCheck("batch-log", sp => sp.GetRequiredService<SessionStore>().IsLoaded, "the batch log is read back")
            .AddReadinessCheck("broker", sp => sp.GetRequiredService<BrokerConnections>().IsHealthy, "the broker connections are open");

        var selection = builder.Configuration.GetSection(SelectionOptions.SectionName).Get<SelectionOptions>() ?? new SelectionOptions();
        services.AddGrpc(options =>
        {
            // Explicit limits on both directions: the default receive limit (4 MB) is too small for
            // learner scores of a large super-batch, and an unlimited send is a memory hazard.
            options.MaxReceiveMessageSize = selection.MaxReceiveMessageBytes;
            options.MaxSendMessageSize = selection.MaxSendMessageBytes;
            // Outermost first: every failure, the credential check's included, becomes a status in one place.
            options.Interceptors.Add<ErrorMappingInterceptor>();
            if (selection.Tls.HasCa)
            {
                options.Interceptors.Add<ClientCertificateInterceptor>();
            }
            options.Interceptors.Add<ApiKeyInterceptor>();
        });
        services.Configure<KestrelServerOptions>(kestrel =>
        {
            kestrel.Limits.Http2.KeepAlivePingDelay = selection.KeepAlivePingDelay;
            kestrel.Limits.Http2.KeepAlivePingTimeout = selection.KeepAlivePingTimeout;
            // Kestrel's defaults (32 KiB of headers, 16 KiB per HTTP/2 field) end a request whose
            // headers are larger with a connection error: the client sees UNAVAILABLE, not why. Up to
            // this limit the request reaches the API key check and gets UNAUTHENTICATED.
            kestrel.Limits.MaxRequestHeadersTotalSize = selection.MaxRequestHeaderBytes;
            kestrel.Limits.Http2.MaxRequestHeaderFieldSize = selection.MaxRequestHeaderBytes;
            if (selection.Tls.HasCertificate)
            {
                // Options validation (at start, before the server binds) has named any bad Tls setting.
                var certificate = selection.Tls.LoadCertificate();
                kestrel.ConfigureHttpsDefaults(https =>
                {
                    https.ServerCertificate = certificate;
                    if (selection.Tls.HasCa)
                    {
                        // Asked for, not required by TLS: ClientCertificateInterceptor refuses RPCs
                        // without a good one as UNAUTHENTICATED, and HTTPS probes (no certificate) pass.
                        https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                        https.ClientCertificateValidation = (_, _, _) => true;
                    }
                });
            }
        });
        return builder;
    }

    /// <summary>Maps the Curation service.</summary>
    public static WebApplication MapSelection(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<CurationService>();
        return app;
    }
}
