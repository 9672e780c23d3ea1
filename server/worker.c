/*
 * The worker thread: sets up its loop's modules in dependency order, runs
 * the loop, and tears down in reverse when asked to stop: the HTTP server
 * drains (bounded by drain-timeout-ms), then the pool closes, then the
 * loop's own handles.
 */
#include "worker.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"

static void on_closed(uv_handle_t *h)
{
}

static void pool_closed(struct dbpool *p)
{
}

static void close_loop_handles(struct worker *w)
{
    uv_close((uv_handle_t *)&w->wake, on_closed);
    uv_close((uv_handle_t *)&w->heartbeat, on_closed);
    uv_close((uv_handle_t *)&w->drain_timer, on_closed);
}

/* The loop's modules, in reverse order of their set-up; never from inside their callbacks. */
static void teardown(uv_timer_t *t)
{
    struct worker *w = t->data;
    pipeline_destroy(w->api.pipeline);
    w->api.pipeline = NULL;
    if (!w->pool_closing)
        dbpool_close(&w->pool, pool_closed);
    w->pool_closing = true;
    close_loop_handles(w);
}

/*
 * The last connection is gone. This may run inside a pipeline or store
 * callback (the answer that freed the connection), so the teardown waits for
 * the next turn of the loop.
 */
static void drained(struct http_server *s)
{
    struct worker *w = (struct worker *)((char *)s - offsetof(struct worker, http));
    uv_timer_stop(&w->drain_timer);
    uv_timer_start(&w->drain_timer, teardown, 0, 0);
}

/*
 * drain-timeout-ms passed: the clients are cut off and the database
 * connections closed, so that work still in flight ends (CLAIMD_EUNAVAIL)
 * and the loop can exit.
 */
static void on_drain_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    log_msg(LOG_WARN, "worker", "loop %d: drain timed out; closing connections", w->index);
    http_server_close_all(&w->http);
    if (!w->pool_closing) {
        w->pool_closing = true;
        dbpool_close(&w->pool, pool_closed);
    }
}

/* Takes what worker_reload handed over: reloadable settings and versions. */
static void take_reload(struct worker *w)
{
    uv_mutex_lock(&w->reload_lock);
    const struct policy_set *ps = w->reload_policies;
    w->reload_policies = NULL;
    if (w->has_reload_cfg) {
        for (size_t i = 0; i < config_nsettings; i++) {
            const struct config_setting *s = &config_settings[i];
            if (s->reloadable && s->type == CONFIG_INT)
                *(int *)(void *)((char *)&w->cfg + s->offset) =
                    *(const int *)(const void *)((const char *)&w->reload_cfg + s->offset);
        }
        w->has_reload_cfg = false;
    }
    if (ps != NULL) {
        w->api.policies = *ps;
        atomic_store(&w->using_policies, ps->v);
    }
    uv_mutex_unlock(&w->reload_lock);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    take_reload(w);
    if (!atomic_load(&w->stop) || w->http.draining)
        return;
    uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)w->cfg.drain_timeout_ms, 0);
    http_server_drain(&w->http, drained);
}

static void set_gauge(metric_t *m, uint64_t v)
{
    atomic_store_explicit(m, v, memory_order_relaxed);
}

/* Liveness, and the gauges of /metrics, once a second. */
static void on_heartbeat(uv_timer_t *t)
{
    struct worker *w = t->data;
    struct pipeline_stats ps;
    size_t busy = 0;
    atomic_store(&w->beat, uv_now(&w->loop));
    if (w->api.pipeline == NULL)
        return;
    pipeline_stats(w->api.pipeline, &ps);
    for (size_t i = 0; i < w->pool.nconns; i++)
        busy += w->pool.conns[i].state == PGCONN_BUSY;
    set_gauge(&w->api.metrics.queue_depth, ps.queued);
    set_gauge(&w->api.metrics.pool_size, w->pool.nconns);
    set_gauge(&w->api.metrics.pool_up, dbpool_up(&w->pool));
    set_gauge(&w->api.metrics.pool_busy, busy);
    set_gauge(&w->api.metrics.connections, w->http.stats.open);
}

static void batch_committed(void *arg, size_t n)
{
    struct worker *w = arg;
    metrics_batch(&w->api.metrics, n);
}

static int init_db(struct worker *w)
{
    const struct config *c = &w->cfg;
    memset(&w->pgcfg, 0, sizeof(w->pgcfg));
    w->pgcfg.conninfo = c->database_url;
    w->pgcfg.statement_timeout_ms = c->statement_timeout_ms;
    w->pgcfg.connect_timeout_ms = 5000;
    w->pgcfg.job_timeout_ms = c->statement_timeout_ms * 3;
    w->pgcfg.backoff_min_ms = 100;
    w->pgcfg.backoff_max_ms = 5000;
    w->pgcfg.statements[0] = (struct pgconn_statements){pipeline_statements, pipeline_nstatements};
    w->pgcfg.statements[1] = (struct pgconn_statements){store_statements, store_nstatements};
    int rc =
        dbpool_init(&w->pool, &w->loop, &w->pgcfg, (size_t)c->db_connections, (size_t)c->max_queue);
    if (rc != 0)
        return rc;
    struct pipeline_config pc = {(size_t)c->max_batch, (size_t)c->max_queue, 5, batch_committed, w};
    w->api.loop = &w->loop;
    w->api.policies = *w->policies;
    w->api.store = (struct store){&w->pool, &w->api.policies, DATE_NONE};
    w->api.schema_version = (int64_t)migrate_builtin_count;
    atomic_store(&w->using_policies, w->policies->v);
    rc = pipeline_create(&w->api.pipeline, &w->pool, &pc, &w->api.policies);
    return rc ? rc : auth_init(&w->api.auth, &w->loop, &w->api.store, &c->auth_cache_ms);
}

static int init_loop(struct worker *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc != 0)
        return rc;
    uv_async_init(&w->loop, &w->wake, on_wake);
    uv_timer_init(&w->loop, &w->heartbeat);
    uv_timer_init(&w->loop, &w->drain_timer);
    w->wake.data = w->heartbeat.data = w->drain_timer.data = w;
    uv_timer_start(&w->heartbeat, on_heartbeat, 0, 1000);
    rc = init_db(w);
    if (rc != 0)
        return rc;
    w->httpcfg = (struct http_config){&w->cfg.header_timeout_ms, &w->cfg.body_timeout_ms,
                                      &w->cfg.idle_timeout_ms, w->cfg.max_connections};
    rc = http_server_init(&w->http, &w->loop, w->listen_fd, &w->httpcfg, api_route, api_handle,
                          &w->api);
    if (rc != 0)
        return rc;
    w->http.answered = api_answered;
    w->api.registry = w->registry;
    w->api.loop_index = w->index;
    w->api.access_log = &w->cfg.access_log;
    metrics_register(w->registry, &w->api.metrics);
    dbpool_start(&w->pool);
    return 0;
}

static void run(void *arg)
{
    struct worker *w = arg;
    w->rc = init_loop(w);
    uv_sem_post(&w->ready);
    if (w->rc != 0) {
        log_msg(LOG_ERROR, "worker", "loop %d cannot start: %s", w->index, uv_strerror(w->rc));
        return;
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    auth_destroy(&w->api.auth);
    arena_cache_destroy(&w->http.arenas);
    if (uv_loop_close(&w->loop) != 0)
        log_msg(LOG_WARN, "worker", "loop %d closed with handles still open", w->index);
}

int worker_start(struct worker *w, int index, int listen_fd, const struct config *cfg,
                 const struct policy_set *policies, struct metrics_registry *registry)
{
    memset(w, 0, sizeof(*w));
    w->registry = registry;
    w->index = index;
    w->listen_fd = listen_fd;
    w->cfg = *cfg;
    w->policies = policies;
    int rc = uv_mutex_init(&w->reload_lock);
    if (rc != 0)
        return rc;
    rc = uv_sem_init(&w->ready, 0);
    if (rc != 0)
        return rc;
    rc = uv_thread_create(&w->thread, run, w);
    if (rc == 0)
        uv_sem_wait(&w->ready);
    uv_sem_destroy(&w->ready);
    return rc != 0 ? rc : w->rc;
}

void worker_reload(struct worker *w, const struct config *cfg, const struct policy_set *policies)
{
    uv_mutex_lock(&w->reload_lock);
    w->reload_cfg = *cfg;
    w->has_reload_cfg = true;
    if (policies != NULL)
        w->reload_policies = policies;
    uv_mutex_unlock(&w->reload_lock);
    uv_async_send(&w->wake);
}

bool worker_uses(struct worker *w, const struct policy *versions)
{
    uv_mutex_lock(&w->reload_lock);
    bool pending = w->reload_policies != NULL && w->reload_policies->v == versions;
    uv_mutex_unlock(&w->reload_lock);
    return pending || atomic_load(&w->using_policies) == versions;
}

void worker_stop(struct worker *w)
{
    atomic_store(&w->stop, 1);
    uv_async_send(&w->wake);
}

int worker_join(struct worker *w)
{
    uv_thread_join(&w->thread);
    uv_mutex_destroy(&w->reload_lock);
    return w->rc;
}
