/* resnet.c - the ResNet block shared by the U-Net and the VAE. */
#include "nets/resnet.h"

#include <stdio.h>

sdc_status sdc_resnet_load(sdc_loader *L, sdc_resnet *r, const char *p, int cin, int cout,
                           int temb_dim) {
    char n[256];
    r->cin = cin;
    r->cout = cout;
#define NAME(suffix) (snprintf(n, sizeof n, "%s.%s", p, suffix), n)
    SDC_TRY(sdc_load_norm(L, &r->norm1_w, &r->norm1_b, cin, NAME("norm1")));
    SDC_TRY(sdc_load_conv_bias(L, &r->conv1_w, &r->conv1_b, cout, cin, 3, NAME("conv1")));
    if (temb_dim > 0) {
        SDC_TRY(sdc_load_mat(L, &r->temb_w, cout, temb_dim, NAME("time_emb_proj.weight")));
        SDC_TRY(sdc_load_vec(L, &r->temb_b, cout, NAME("time_emb_proj.bias")));
    }
    SDC_TRY(sdc_load_norm(L, &r->norm2_w, &r->norm2_b, cout, NAME("norm2")));
    SDC_TRY(sdc_load_conv_bias(L, &r->conv2_w, &r->conv2_b, cout, cout, 3, NAME("conv2")));
    if (cin != cout) SDC_TRY(sdc_load_conv_bias(L, &r->short_w, &r->short_b, cout, cin, 1, NAME("conv_shortcut")));
#undef NAME
    return SDC_OK;
}

sdc_status sdc_resnet_forward(sdc_backend *be, const sdc_resnet *r, sdc_buf y, sdc_buf x, sdc_buf temb,
                              int temb_dim, sdc_buf temb_proj, sdc_buf tmp, sdc_buf tmp2, int batch, int h, int w,
                              int groups, float eps) {
    const sdc_backend_ops *op = be->ops;
    const int hw = h * w;
    SDC_TRY(op->group_norm(be, tmp, x, r->norm1_w, r->norm1_b, batch, hw, r->cin, groups, eps, true));
    SDC_TRY(op->conv2d(be, tmp2, tmp, r->conv1_w, r->conv1_b, SDC_NO_BUF, batch, h, w, r->cin, r->cout, 3, 1, 1));
    if (temb.p && r->temb_w.p) {
        SDC_TRY(op->linear(be, temb_proj, temb, r->temb_w, r->temb_b, batch, temb_dim, r->cout));
        SDC_TRY(op->add_rows(be, tmp2, tmp2, temb_proj, batch, (size_t)hw, r->cout));
    }
    SDC_TRY(op->group_norm(be, tmp2, tmp2, r->norm2_w, r->norm2_b, batch, hw, r->cout, groups, eps, true));
    sdc_buf shortcut = x;
    if (r->short_w.p) {
        SDC_TRY(op->conv2d(be, tmp, x, r->short_w, r->short_b, SDC_NO_BUF, batch, h, w, r->cin, r->cout, 1, 1, 0));
        shortcut = tmp;
    }
    return op->conv2d(be, y, tmp2, r->conv2_w, r->conv2_b, shortcut, batch, h, w, r->cout, r->cout, 3, 1, 1);
}

double sdc_resnet_flops(const sdc_resnet *r, double px) {
    return 2.0 * px * 9.0 * r->cin * r->cout + 2.0 * px * 9.0 * r->cout * r->cout +
           (r->short_w.p ? 2.0 * px * r->cin * r->cout : 0.0);
}
